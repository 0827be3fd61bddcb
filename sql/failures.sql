-- When things go wrong: retries with exponential backoff, timeouts, errors raised by
-- RULE functions, references that do not resolve, "when" conditions, cancel_run and
-- retry_run.
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 500000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE SEQUENCE public.flaky_calls;
-- Fails (raises) until it has been called more than input.fail_times times in all.
CREATE FUNCTION public.flaky(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE call bigint := nextval('public.flaky_calls');
BEGIN
  IF call <= (input->>'fail_times')::int THEN
    RAISE EXCEPTION 'flaky failure on call %', call;
  END IF;
  RETURN jsonb_build_object('ok', true, 'call', call);
END $$;
CREATE FUNCTION public.slow(input jsonb) RETURNS jsonb LANGUAGE sql
AS $$ SELECT pg_sleep((input->>'seconds')::float8); SELECT '{"slept": true}'::jsonb $$;
CREATE FUNCTION public.nothing(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION public.pass(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT count(orchestration.register_agent(51, spec::jsonb)) AS registered FROM (VALUES
  ('{"name": "flaky", "type": "RULE", "function": "public.flaky", "capabilities": [{"name": "try"}]}'),
  ('{"name": "slow", "type": "RULE", "function": "public.slow", "limits": {"timeout_seconds": 1}, "capabilities": [{"name": "wait"}]}'),
  ('{"name": "nothing", "type": "RULE", "function": "public.nothing", "capabilities": [{"name": "give"}]}'),
  ('{"name": "pass", "type": "RULE", "function": "public.pass", "capabilities": [{"name": "go"}]}')) s(spec);

-- Retries with exponential backoff: two failures, then success on the third attempt.
SELECT orchestration.create_workflow(51, '{"name": "retry", "nodes": [
  {"id": "try", "agent": "flaky", "action": "try", "inputs": {"fail_times": 2}, "retries": 2, "retry_backoff_seconds": 0.2}]}') > 0 AS created;
SELECT orchestration.start_workflow(51, 'retry') AS run_id \gset
SELECT r->>'status' AS status, r->'nodes'->0->>'attempt' AS attempts, r->'nodes'->0->'output' AS output
FROM orchestration.wait_for_run(:run_id, '30 seconds') r;
SELECT attempt, status, error FROM orchestration.agent_runs WHERE run_id = :run_id ORDER BY attempt;
-- The waits before attempts 2 and 3 were at least 0.2 s and 0.4 s.
SELECT attempt, waited >= interval '0.2 s' * 2 ^ (attempt - 2) AS backed_off
FROM (SELECT attempt, started_at - lag(finished_at) OVER (ORDER BY attempt) AS waited
      FROM orchestration.agent_runs WHERE run_id = :run_id) a
WHERE attempt > 1 ORDER BY attempt;
SELECT type FROM orchestration.events WHERE run_id = :run_id AND type LIKE '%node%' ORDER BY id;

-- Retries run out: the node fails, the run fails, what depends on it is skipped; an
-- independent branch that already ran keeps its result.
SELECT setval('public.flaky_calls', 1, false);
SELECT orchestration.create_workflow(51, '{"name": "give-up", "nodes": [
  {"id": "independent", "agent": "pass", "action": "go"},
  {"id": "try", "agent": "flaky", "action": "try", "inputs": {"fail_times": 3}, "retries": 1, "retry_backoff_seconds": 0},
  {"id": "after", "agent": "pass", "action": "go", "depends_on": ["try"]}]}') > 0 AS created;
SELECT orchestration.start_workflow(51, 'give-up') AS failed_run \gset
SELECT r->>'status' AS status, r->>'error' AS error FROM orchestration.wait_for_run(:failed_run, '30 seconds') r;
SELECT node_key, status, attempt, error FROM orchestration.node_runs WHERE run_id = :failed_run ORDER BY level, node_key;

-- retry_run continues from the failed node; the node that succeeded does not run again.
SELECT setval('public.flaky_calls', 100) > 0 AS fixed;
SELECT orchestration.retry_run(:failed_run);
SELECT r->>'status' AS status FROM orchestration.wait_for_run(:failed_run, '30 seconds') r;
SELECT n.node_key, count(*) AS attempts, string_agg(r.status::text, ',' ORDER BY r.attempt) AS statuses
FROM orchestration.agent_runs r JOIN orchestration.workflow_run_nodes n ON n.id = r.run_node_id
WHERE r.run_id = :failed_run GROUP BY n.node_key ORDER BY n.node_key;
SELECT orchestration.retry_run(:failed_run);

-- A timeout (the agent's limits.timeout_seconds, or the node's timeout_seconds) fails the attempt.
SELECT orchestration.create_workflow(51, '{"name": "too-slow", "nodes": [
  {"id": "agent-limit", "agent": "slow", "action": "wait", "inputs": {"seconds": 30}}]}') > 0 AS created;
SELECT orchestration.create_workflow(51, '{"name": "node-limit", "nodes": [
  {"id": "node-limit", "agent": "slow", "action": "wait", "inputs": {"seconds": 1.5}, "timeout_seconds": 5}]}') > 0 AS created;
SELECT orchestration.start_workflow(51, 'too-slow') AS slow_run \gset
SELECT orchestration.start_workflow(51, 'node-limit') AS limit_run \gset
SELECT r->>'workflow' AS workflow, r->>'status' AS status, r->'nodes'->0->>'error' AS error
FROM unnest(ARRAY[:slow_run, :limit_run]) id, orchestration.wait_for_run(id, '60 seconds') r;

-- Errors a RULE function raises, a NULL result, and references that do not resolve.
SELECT orchestration.create_workflow(51, '{"name": "broken", "nodes": [
  {"id": "raises", "agent": "flaky", "action": "try", "inputs": {"fail_times": 1000000}}]}') > 0 AS created;
SELECT orchestration.create_workflow(51, '{"name": "null-result", "nodes": [{"id": "null", "agent": "nothing", "action": "give"}]}') > 0 AS created;
SELECT orchestration.create_workflow(51, '{"name": "unresolved", "nodes": [
  {"id": "first", "agent": "pass", "action": "go", "inputs": {"who": "{{ context.user.name }}"}}]}') > 0 AS created;
SELECT orchestration.start_workflow(51, 'broken') AS broken_run \gset
SELECT orchestration.start_workflow(51, 'null-result') AS null_run \gset
SELECT orchestration.start_workflow(51, 'unresolved', '{"user": {"id": 7}}') AS unresolved_run \gset
SELECT r->>'workflow' AS workflow, r->>'status' AS status, r->'nodes'->0->>'error' AS error
FROM unnest(ARRAY[:broken_run, :null_run, :unresolved_run]) id, orchestration.wait_for_run(id, '30 seconds') r;
-- A reference that does not resolve fails the node before any attempt.
SELECT count(*) AS attempts FROM orchestration.agent_runs WHERE run_id = :unresolved_run;

-- "when": a false condition skips the node; a dependent is skipped too unless it sets
-- run_if_skipped; the run still succeeds.
SELECT orchestration.create_workflow(51, $${"name": "conditional", "nodes": [
  {"id": "check", "agent": "pass", "action": "go", "inputs": {"notify": "{{ context.notify }}", "count": "{{ context.count }}"}},
  {"id": "notify", "agent": "pass", "action": "go", "depends_on": ["check"], "when": "{{ nodes.check.output.notify }}"},
  {"id": "after-notify", "agent": "pass", "action": "go", "depends_on": ["notify"]},
  {"id": "cleanup", "agent": "pass", "action": "go", "depends_on": ["notify"], "run_if_skipped": true},
  {"id": "many", "agent": "pass", "action": "go", "depends_on": ["check"], "when": "{{ nodes.check.output.count }} > 2"}]}$$) > 0 AS created;
SELECT orchestration.start_workflow(51, 'conditional', '{"notify": false, "count": 3}') AS cond_run \gset
SELECT orchestration.wait_for_run(:cond_run, '30 seconds')->>'status' AS status;
SELECT node_key, status, error AS reason FROM orchestration.node_runs WHERE run_id = :cond_run ORDER BY level, node_key;

-- cancel_run: nothing else starts; the run ends CANCELLED.
SELECT orchestration.create_workflow(51, '{"name": "long", "nodes": [
  {"id": "first", "agent": "slow", "action": "wait", "inputs": {"seconds": 0.5}},
  {"id": "second", "agent": "pass", "action": "go", "depends_on": ["first"]},
  {"id": "third", "agent": "pass", "action": "go", "depends_on": ["second"]}]}') > 0 AS created;
SELECT orchestration.start_workflow(51, 'long') AS long_run \gset
SELECT orchestration.cancel_run(:long_run, 'deploy window closed');
SELECT r->>'status' AS status, r->>'error' AS error FROM orchestration.wait_for_run(:long_run, '30 seconds') r;
SELECT node_key, status FROM orchestration.node_runs WHERE run_id = :long_run AND node_key <> 'first' ORDER BY node_key;
SELECT count(*) AS attempts_after_cancel FROM orchestration.agent_runs r JOIN orchestration.workflow_run_nodes n ON n.id = r.run_node_id
WHERE r.run_id = :long_run AND n.node_key <> 'first';
SELECT orchestration.cancel_run(:long_run);
SELECT orchestration.cancel_run(424242);

-- A node starts only while its run is live. Three container nodes are claimed in one
-- round: the first is refused (its image is not allowed), which fails the run and skips
-- the others; neither is started afterwards (no attempt, no started event) nor asks for
-- an approval.
SELECT count(orchestration.register_agent(51, spec::jsonb)) AS registered FROM (VALUES
  ('{"name": "forbidden", "type": "SCRIPT", "image": "elsewhere/tool:1", "capabilities": [{"name": "run"}]}'),
  ('{"name": "allowed", "type": "SCRIPT", "image": "orchestration/busybox:test", "capabilities": [{"name": "run"}]}'),
  ('{"name": "guarded", "type": "SCRIPT", "image": "orchestration/busybox:test", "risk_level": "APPROVAL_REQUIRED", "capabilities": [{"name": "run"}]}')) s(spec);
SELECT orchestration.create_workflow(51, '{"name": "doomed", "nodes": [
  {"id": "a", "agent": "forbidden", "action": "run"},
  {"id": "b", "agent": "allowed", "action": "run"},
  {"id": "c", "agent": "guarded", "action": "run"}]}') > 0 AS created;
SELECT orchestration.start_workflow(51, 'doomed') AS run_id \gset
SELECT r->>'status' AS status, split_part(r->>'error', ' by ', 1) AS error
FROM orchestration.wait_for_run(:run_id, '30 seconds') r;
SELECT node_key, status, skip_reason FROM orchestration.workflow_run_nodes WHERE run_id = :run_id ORDER BY node_key;
SELECT (SELECT count(*) FROM orchestration.agent_runs WHERE run_id = :run_id) AS attempts,
       (SELECT count(*) FROM orchestration.workflow_approvals WHERE run_id = :run_id) AS approvals;
SELECT type, substring(subject FROM 'node/(.*)$') AS node FROM orchestration.events WHERE run_id = :run_id ORDER BY id;

-- A run keeps the nodes it started with. A node whose agent lost the capability it calls
-- since (or was deleted) fails saying so, instead of waiting for ever.
SELECT count(orchestration.register_agent(51, spec::jsonb)) AS registered FROM (VALUES
  ('{"name": "gate", "type": "RULE", "function": "public.pass", "risk_level": "APPROVAL_REQUIRED", "capabilities": [{"name": "go"}]}'),
  ('{"name": "shifty", "type": "RULE", "function": "public.pass", "capabilities": [{"name": "old"}, {"name": "new"}]}')) s(spec);
SELECT orchestration.create_workflow(51, '{"name": "drift", "nodes": [
  {"id": "gate", "agent": "gate", "action": "go"},
  {"id": "use", "agent": "shifty", "action": "old", "depends_on": ["gate"]}]}') AS drift_id \gset
SELECT orchestration.start_workflow(51, 'drift') AS run_id \gset
SELECT orchestration.wait_for_run(:run_id, '30 seconds')->>'status' AS status;
-- While it waits, the workflow moves to the new capability and the agent drops the old one.
SELECT orchestration.update_workflow(:drift_id, '{"name": "drift", "nodes": [
  {"id": "gate", "agent": "gate", "action": "go"},
  {"id": "use", "agent": "shifty", "action": "new", "depends_on": ["gate"]}]}') IS NOT NULL AS updated;
SELECT orchestration.update_agent((SELECT id FROM orchestration.agents WHERE project_id = 51 AND name = 'shifty'),
  '{"name": "shifty", "type": "RULE", "function": "public.pass", "capabilities": [{"name": "new"}]}') IS NOT NULL AS updated;
SELECT orchestration.approve((SELECT approval_id FROM orchestration.pending_approvals WHERE run_id = :run_id)) IS NOT NULL AS approved;
SELECT r->>'status' AS status, r->>'error' AS error FROM orchestration.wait_for_run(:run_id, '30 seconds') r;

-- Numbers jsonb holds but a double cannot (1e400) in an output or a run's context fail
-- their node with the reason, instead of failing the worker's pass again and again.
CREATE FUNCTION public.huge(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"n": 1e400}'::jsonb $$;
SELECT orchestration.register_agent(51, '{"name": "huge", "type": "RULE", "function": "public.huge", "capabilities": [{"name": "go"}]}') > 0 AS registered;
SELECT orchestration.create_workflow(51, '{"name": "huge", "nodes": [{"id": "h", "agent": "huge", "action": "go"}]}') > 0 AS created;
SELECT orchestration.create_workflow(51, '{"name": "reads-huge", "nodes": [{"id": "p", "agent": "pass", "action": "go", "inputs": {"v": "{{ context.big }}"}}]}') > 0 AS created;
SELECT orchestration.start_workflow(51, 'huge') AS huge_run \gset
SELECT orchestration.start_workflow(51, 'reads-huge', '{"big": 1e400}') AS context_run \gset
SELECT r->>'status' AS status, left(r->'nodes'->0->>'error', 80) AS error
FROM unnest(ARRAY[:huge_run, :context_run]) id, orchestration.wait_for_run(id, '30 seconds') r;
