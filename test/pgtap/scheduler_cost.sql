-- Finding work must not get dearer as history piles up: the scheduler's claim reads the
-- same number of pages with 100,000 finished nodes in the tables as with none. Counted
-- in buffers (deterministic), not timed.
BEGIN;
SELECT plan(3);

CREATE FUNCTION pg_temp.claim_buffers() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM orchestration.claim_nodes(50, 0, 0, ''{}'', ''any'', ''{}'', NULL, ''{}'')' INTO plan;
  RETURN (plan->0->'Plan'->>'Shared Hit Blocks')::bigint + (plan->0->'Plan'->>'Shared Read Blocks')::bigint;
END $$;
CREATE FUNCTION pg_temp.due_buffers() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT orchestration.next_due_at()' INTO plan;
  RETURN (plan->0->'Plan'->>'Shared Hit Blocks')::bigint + (plan->0->'Plan'->>'Shared Read Blocks')::bigint;
END $$;

CREATE FUNCTION public.cost_rule(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT orchestration.register_agent(61, '{"name": "noop", "type": "RULE", "function": "public.cost_rule", "capabilities": [{"name": "go"}]}');
SELECT orchestration.create_workflow(61, '{"name": "history", "nodes": [{"id": "only", "agent": "noop", "action": "go"}]}');
-- Warm the caches and plans, then measure on empty tables.
SELECT pg_temp.claim_buffers(), pg_temp.due_buffers();
CREATE TEMP TABLE empty_cost AS SELECT pg_temp.claim_buffers() AS claim, pg_temp.due_buffers() AS due;

-- 1,000 finished runs of 100 nodes each.
INSERT INTO orchestration.workflow_runs (workflow_id, project_id, workflow_version, trigger, status, started_by, started_at, finished_at)
SELECT w.id, 61, 1, 'manual', 'SUCCESS', 'history', now(), now()
FROM orchestration.workflows w, generate_series(1, 1000) WHERE w.name = 'history';
INSERT INTO orchestration.workflow_run_nodes
  (run_id, project_id, node_key, agent_id, action, inputs, depends_on, approval_required, retries,
   retry_backoff_seconds, run_if_skipped, refs, dependents, level, pending_deps, status, attempt, output)
SELECT r.id, 61, 'n' || i, a.id, 'go', '{}', '{}', false, 0, 1, false, '{}', '{}', i % 7, 0, 'SUCCESS', 1, '{"done": true}'
FROM orchestration.workflow_runs r, generate_series(1, 100) i, orchestration.agents a
WHERE r.project_id = 61 AND a.name = 'noop' AND a.project_id = 61;
ANALYZE orchestration.workflow_run_nodes, orchestration.workflow_runs;
-- Replan (the statistics changed) before measuring again.
SELECT pg_temp.claim_buffers(), pg_temp.due_buffers();
SELECT is((SELECT count(*) FROM orchestration.workflow_run_nodes WHERE project_id = 61), 100000::bigint,
          '100,000 finished nodes of history');

SELECT cmp_ok(pg_temp.claim_buffers(), '<=', (SELECT claim + 2 FROM empty_cost),
              'claiming work reads no more pages with the history than without');
SELECT cmp_ok(pg_temp.due_buffers(), '<=', (SELECT due + 2 FROM empty_cost),
              'finding the next due retry or expiry reads no more pages with the history');

SELECT * FROM finish();
ROLLBACK;
