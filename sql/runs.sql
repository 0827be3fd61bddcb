-- Runs: start a workflow, wait for it, read it back. The scheduler worker of this
-- database runs the nodes; RULE agents are SQL functions.
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 200000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE FUNCTION public.runs_add(input jsonb) RETURNS jsonb LANGUAGE sql
AS $$ SELECT jsonb_build_object('v', (input->>'x')::int + 1, 'seen', input) $$;
SELECT orchestration.register_agent(21, '{"name": "adder", "type": "RULE", "function": "public.runs_add", "capabilities": [{"name": "add"}]}') AS adder_id \gset

-- The diamond: a -> b, a -> c, {b, c} -> d.
SELECT orchestration.create_workflow(21, $${"name": "diamond", "nodes": [
  {"id": "a", "agent": "adder", "action": "add", "inputs": {"x": "{{ context.start }}"}},
  {"id": "b", "agent": "adder", "action": "add", "depends_on": ["a"], "inputs": {"x": "{{ nodes.a.output.v }}"}},
  {"id": "c", "agent": "adder", "action": "add", "depends_on": ["a"], "inputs": {"x": "{{ nodes.a.output.v }}", "whole": "{{ nodes.a.output }}"}},
  {"id": "d", "agent": "adder", "action": "add", "depends_on": ["b", "c"],
   "inputs": {"x": "{{ nodes.c.output.v }}", "from_b": "{{ nodes.b.output.v }}",
              "text": "b said {{ nodes.b.output.v }}, c said {{ nodes.c.output.v }} in {{ workflow.name }}"}}
]}$$) AS diamond_id \gset

SELECT orchestration.start_workflow(21, 'diamond', '{"start": 10}') AS run_id \gset
SELECT r->>'status' AS status, r->>'workflow' AS workflow, r->'timed_out' AS timed_out
FROM orchestration.wait_for_run(:run_id, '30 seconds') r;
SELECT n->>'node_key' AS node, n->>'status' AS status, n->'output'->'v' AS v, n->'output'->'seen' AS input
FROM jsonb_array_elements(orchestration.run_json(:run_id)->'nodes') n;
-- b and c were dispatched in the same scheduling round, after a and before d.
SELECT n.node_key, r.scheduler_round - min(r.scheduler_round) OVER () AS round
FROM orchestration.agent_runs r JOIN orchestration.workflow_run_nodes n ON n.id = r.run_node_id
WHERE r.run_id = :run_id ORDER BY round, n.node_key;
-- The views an operator reads.
SELECT workflow, status, nodes, succeeded, failed, pending, percent_done, finished_at IS NOT NULL AS finished
FROM orchestration.run_summary WHERE run_id = :run_id;
SELECT node_key, agent, action, status, attempt, level, error FROM orchestration.node_runs WHERE run_id = :run_id ORDER BY level, node_key;
-- Every state change left an event, in order.
SELECT type, substring(subject FROM 'node/(.*)$') AS node FROM orchestration.events WHERE run_id = :run_id ORDER BY id;

-- start_workflow is part of the caller's transaction: a rollback leaves no run.
BEGIN;
SELECT orchestration.start_workflow(21, 'diamond', '{"start": 1}') > 0 AS started;
ROLLBACK;
SELECT count(*) AS runs_of_diamond FROM orchestration.workflow_runs WHERE workflow_id = :diamond_id;

-- A run keeps the definition it started with, whatever happens to the workflow later.
BEGIN;
SELECT orchestration.start_workflow(21, 'diamond', '{"start": 100}') AS pinned_run \gset
SELECT orchestration.update_workflow(:diamond_id, '{"name": "diamond", "nodes": [{"id": "only", "agent": "adder", "action": "add", "inputs": {"x": 0}}]}')->>'version' AS version;
COMMIT;
SELECT r->>'status' AS status, r->>'workflow_version' AS version, jsonb_array_length(r->'nodes') AS nodes,
       r->'nodes'->3->'output'->'v' AS d_output
FROM orchestration.wait_for_run(:pinned_run, '30 seconds') r;
SELECT orchestration.start_workflow(21, 'diamond', '{}') AS new_run \gset
SELECT r->>'status' AS status, r->>'workflow_version' AS version, r->'nodes'->0->>'node_key' AS node
FROM orchestration.wait_for_run(:new_run, '30 seconds') r;

-- Bad calls.
SELECT orchestration.start_workflow(21, 'no-such-workflow');
SELECT orchestration.start_workflow(21, 'diamond', '[1, 2]');
SELECT orchestration.start_workflow(21, 'diamond', NULL);
SELECT orchestration.start_workflow(21, NULL);
SELECT orchestration.start_workflow(-1, 'diamond');
SELECT orchestration.wait_for_run(987654321);
BEGIN;
SELECT orchestration.start_workflow(21, 'diamond') AS uncommitted_run \gset
SELECT orchestration.wait_for_run(:uncommitted_run, '1 second');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT orchestration.wait_for_run(:run_id);
ROLLBACK;

-- A context traceparent continues the caller's trace: the run is a span of its own in it
-- (a child of the caller's span); otherwise a new trace starts. Each attempt is a span of
-- the run's trace.
SELECT orchestration.start_workflow(21, 'diamond', '{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}') AS traced_run \gset
SELECT substr(traceparent, 1, 36) AS trace, substr(traceparent, 37, 16) <> 'b7ad6b7169203331' AS own_span
FROM orchestration.workflow_runs WHERE id = :traced_run;
SELECT traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-01$' AS new_trace FROM orchestration.workflow_runs WHERE id = :new_run;
SELECT orchestration.wait_for_run(:traced_run, '30 seconds')->>'status' AS status;
SELECT count(*) AS attempts, count(DISTINCT a.traceparent) AS spans,
       bool_and(substr(a.traceparent, 1, 36) = substr(r.traceparent, 1, 36)) AS in_run_trace,
       bool_and(a.traceparent <> r.traceparent) AS own_spans,
       count(*) FILTER (WHERE r.id = :traced_run AND a.traceparent LIKE '00-0af7651916cd43dd8448eb211c80319c-%') AS in_callers_trace
FROM orchestration.agent_runs a JOIN orchestration.workflow_runs r ON r.id = a.run_id
WHERE r.project_id = 21;

-- An idempotency key: a caller that retries a start (after a timeout, say) gets the run
-- its first try started, not a second one; another project's key is its own.
SELECT orchestration.start_workflow(21, 'diamond', '{"start": 1}', 'order-7') AS keyed_run \gset
SELECT orchestration.start_workflow(21, 'diamond', '{"start": 1}', 'order-7') = :keyed_run AS same_run,
       orchestration.run_json(:keyed_run)->>'idempotency_key' AS key,
       (SELECT count(*) FROM orchestration.workflow_runs WHERE idempotency_key = 'order-7') AS runs;
SELECT orchestration.start_workflow(21, 'diamond', '{"start": 2}', 'order-7');
SELECT orchestration.start_workflow(21, 'diamond', '{"start": 1}', repeat('k', 256));
SELECT orchestration.register_agent(22, '{"name": "adder", "type": "RULE", "function": "public.runs_add", "capabilities": [{"name": "add"}]}') > 0 AS registered;
SELECT orchestration.create_workflow(22, '{"name": "diamond", "nodes": [{"id": "a", "agent": "adder", "action": "add", "inputs": {"x": 1}}]}') > 0 AS created;
SELECT orchestration.start_workflow(22, 'diamond', '{"start": 1}', 'order-7') <> :keyed_run AS own_run_in_project_22;
-- A rolled-back start leaves its key unused.
BEGIN;
SELECT orchestration.start_workflow(21, 'diamond', '{}', 'order-8') > 0 AS started;
ROLLBACK;
SELECT count(*) AS runs_with_order_8 FROM orchestration.workflow_runs WHERE idempotency_key = 'order-8';
SELECT orchestration.wait_for_run(:keyed_run, 30)->>'status' AS status;
-- A retry from another span of the caller's trace is the same request.
SELECT orchestration.start_workflow(21, 'diamond', '{"start": 1, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"}', 'order-7') = :keyed_run AS same_run_other_span;
