-- Workflow definitions: create, read, update, archive, topological levels, and every
-- way a definition is refused (with nothing written).
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 100000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE FUNCTION public.wf_echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT orchestration.register_agent(11, '{"name": "echo", "type": "RULE", "function": "public.wf_echo", "capabilities": [{"name": "say"}, {"name": "shout"}]}') AS echo_id \gset
SELECT orchestration.register_agent(12, '{"name": "foreign", "type": "RULE", "function": "public.wf_echo", "capabilities": [{"name": "say"}]}') AS foreign_id \gset

SELECT orchestration.create_workflow(11, $${
  "name": "review", "description": "Scan, triage, then report",
  "trigger": {"type": "nats", "subject": "repos.*.pushed"},
  "nodes": [
    {"id": "scan", "agent": "echo", "action": "say", "inputs": {"repo": "{{ context.repo }}"}},
    {"id": "triage", "agent": "echo", "action": "say", "depends_on": ["scan"],
     "inputs": {"findings": "{{ nodes.scan.output.repo }}"}, "retries": 2, "retry_backoff_seconds": 0.5},
    {"id": "lint", "agent": "echo", "action": "shout", "depends_on": ["scan"], "timeout_seconds": 30},
    {"id": "report", "agent": "echo", "action": "say", "depends_on": ["triage", "lint"],
     "approval_required": true, "when": "{{ nodes.triage.output.findings }} != \"\"",
     "inputs": {"text": "{{ workflow.name }} run {{ run.id }}: {{ nodes.scan.output.repo }}"}}
  ]}$$) AS review_id \gset

SELECT * FROM orchestration.workflow_levels(:review_id);
SELECT jsonb_pretty(orchestration.get_workflow(:review_id) - '{id,created_at,updated_at}'::text[]);
SELECT name, status, version, trigger FROM orchestration.workflows WHERE id = :review_id;

-- update_workflow replaces the definition and bumps the version.
SELECT orchestration.update_workflow(:review_id, orchestration.get_workflow(:review_id)
         || '{"description": "Scan and report", "nodes": [{"id": "scan", "agent": "echo", "action": "say"}, {"id": "report", "agent": "echo", "action": "shout", "depends_on": ["scan"]}]}')->>'version' AS version;
SELECT node_key, level, depends_on FROM orchestration.workflow_levels(:review_id);
-- Levels are the longest way down, not the shortest: "late" depends on "scan" directly
-- and through "mid", so it comes after "mid".
SELECT orchestration.create_workflow(11, '{"name": "shortcut", "nodes": [
  {"id": "late", "agent": "echo", "action": "say", "depends_on": ["scan", "mid"]},
  {"id": "mid", "agent": "echo", "action": "say", "depends_on": ["scan"]},
  {"id": "scan", "agent": "echo", "action": "say"},
  {"id": "aside", "agent": "echo", "action": "say"}]}') AS shortcut_id \gset
SELECT node_key, level, depends_on FROM orchestration.workflow_levels(:shortcut_id);
SELECT orchestration.archive_workflow(:shortcut_id);
-- Two hundred diamonds in series (2^200 paths from the first node to the last): the
-- graph is checked in time linear in its nodes and edges (C++), and the recursive CTE
-- that gives every node its level (SQL) keeps one row per node per level, never a path.
-- Exponential work would not finish within the statement timeout.
SET statement_timeout = '5s';
SELECT orchestration.create_workflow(11, jsonb_build_object('name', 'diamonds', 'nodes',
  jsonb_build_array(jsonb_build_object('id', 'top0', 'agent', 'echo', 'action', 'say'))
  || (SELECT jsonb_agg(node ORDER BY i, part) FROM generate_series(0, 199) i, LATERAL (VALUES
       (1, jsonb_build_object('id', 'l' || i, 'agent', 'echo', 'action', 'say', 'depends_on', jsonb_build_array('top' || i))),
       (2, jsonb_build_object('id', 'r' || i, 'agent', 'echo', 'action', 'say', 'depends_on', jsonb_build_array('top' || i))),
       (3, jsonb_build_object('id', 'top' || (i + 1), 'agent', 'echo', 'action', 'say',
                              'depends_on', jsonb_build_array('l' || i, 'r' || i),
                              'inputs', jsonb_build_object('first', '{{ nodes.top0.output }}')))) v(part, node)))) AS diamonds_id \gset
RESET statement_timeout;
SELECT count(*) AS nodes, max(level) AS deepest,
       (SELECT level FROM orchestration.workflow_levels(:diamonds_id) WHERE node_key = 'top200') AS top200,
       (SELECT level FROM orchestration.workflow_levels(:diamonds_id) WHERE node_key = 'r199') AS r199,
       count(*) FILTER (WHERE level = CASE WHEN node_key LIKE 'top%' THEN 2 * substr(node_key, 4)::integer
                                           ELSE 2 * substr(node_key, 2)::integer + 1 END) AS as_expected
FROM orchestration.workflow_levels(:diamonds_id);

-- archive_workflow: it stays, but cannot be started.
SELECT orchestration.archive_workflow(:review_id);
SELECT status FROM orchestration.workflows WHERE id = :review_id;
SELECT orchestration.start_workflow(11, 'review');
SELECT orchestration.update_workflow(:review_id, orchestration.get_workflow(:review_id) || '{"status": "ACTIVE"}')->>'status' AS status;

-- A transitive ancestor is upstream: this one is accepted.
SELECT orchestration.create_workflow(11, '{"name": "transitive", "nodes": [
  {"id": "a", "agent": "echo", "action": "say"},
  {"id": "b", "agent": "echo", "action": "say", "depends_on": ["a"]},
  {"id": "c", "agent": "echo", "action": "say", "depends_on": ["b"], "inputs": {"x": "{{ nodes.a.output }}"}}]}') > 0 AS accepted;
SELECT orchestration.archive_workflow(id) FROM orchestration.workflows WHERE name = 'transitive';

CREATE TEMP TABLE workflows_before AS
SELECT (SELECT count(*) FROM orchestration.workflows) AS workflows,
       (SELECT md5(string_agg(n::text, ',' ORDER BY n.id)) FROM orchestration.workflow_nodes n) AS nodes;

-- A cycle: the message lists the nodes on it.
SELECT orchestration.create_workflow(11, '{"name": "loop", "nodes": [
  {"id": "start", "agent": "echo", "action": "say"},
  {"id": "a", "agent": "echo", "action": "say", "depends_on": ["start", "c"]},
  {"id": "b", "agent": "echo", "action": "say", "depends_on": ["a"]},
  {"id": "c", "agent": "echo", "action": "say", "depends_on": ["b"]}]}');
-- A cycle no root leads to.
SELECT orchestration.create_workflow(11, '{"name": "loop", "nodes": [
  {"id": "x", "agent": "echo", "action": "say", "depends_on": ["y"]},
  {"id": "y", "agent": "echo", "action": "say", "depends_on": ["x"]}]}');
-- A node that depends on itself.
SELECT orchestration.create_workflow(11, '{"name": "loop", "nodes": [
  {"id": "root", "agent": "echo", "action": "say"},
  {"id": "self", "agent": "echo", "action": "say", "depends_on": ["root", "self"]}]}');
-- A dependency on a node that does not exist; a duplicate node id.
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [{"id": "a", "agent": "echo", "action": "say", "depends_on": ["ghost"]}]}');
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [{"id": "a", "agent": "echo", "action": "say"}, {"id": "a", "agent": "echo", "action": "say"}]}');
-- Unknown agent, unknown action, an agent of another project.
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [{"id": "a", "agent": "nobody", "action": "say"}]}');
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [{"id": "a", "agent": "echo", "action": "whisper"}]}');
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [{"id": "a", "agent": "foreign", "action": "say"}]}');
-- A placeholder naming a node that is not upstream (here: a sibling).
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [
  {"id": "a", "agent": "echo", "action": "say"},
  {"id": "b", "agent": "echo", "action": "say", "depends_on": ["a"]},
  {"id": "c", "agent": "echo", "action": "say", "depends_on": ["a"], "inputs": {"x": "{{ nodes.b.output }}"}}]}');
-- ... or downstream, in a condition.
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [
  {"id": "a", "agent": "echo", "action": "say", "when": "{{ nodes.b.output.ok }}"},
  {"id": "b", "agent": "echo", "action": "say", "depends_on": ["a"]}]}');
-- Malformed templates and conditions, unknown fields, bad triggers, a duplicate name.
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [{"id": "a", "agent": "echo", "action": "say", "inputs": {"x": "{{ context.x"}}]}');
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [{"id": "a", "agent": "echo", "action": "say", "inputs": {"x": "{{ contxt.x }}"}}]}');
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [{"id": "a", "agent": "echo", "action": "say", "when": "{{ context.x }} === 1"}]}');
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": [{"id": "a", "agent": "echo", "action": "say", "dependsOn": []}]}');
SELECT orchestration.create_workflow(11, '{"name": "bad", "trigger": {"type": "nats", "subject": "a b"}, "nodes": [{"id": "a", "agent": "echo", "action": "say"}]}');
SELECT orchestration.create_workflow(11, '{"name": "bad", "nodes": []}');
SELECT orchestration.create_workflow(11, '{"name": "review", "nodes": [{"id": "a", "agent": "echo", "action": "say"}]}');
SELECT orchestration.update_workflow(:review_id, '{"name": "review", "nodes": [{"id": "a", "agent": "echo", "action": "say", "depends_on": ["a"]}]}');
SELECT orchestration.update_workflow(999999, '{}');

SELECT b.workflows = (SELECT count(*) FROM orchestration.workflows) AS same_workflows,
       b.nodes = (SELECT md5(string_agg(n::text, ',' ORDER BY n.id)) FROM orchestration.workflow_nodes n) AS same_nodes
FROM workflows_before b;

-- An agent a workflow uses cannot be deleted, nor the capability it calls removed.
SELECT orchestration.delete_agent(:echo_id);
SELECT orchestration.update_agent(:echo_id, orchestration.get_agent(:echo_id) || '{"capabilities": [{"name": "say"}]}');
