-- A claim round is recorded at once: the scheduler runs every RULE node it claimed
-- together, then records all their outcomes in one call (record_attempts). What a user
-- sees must be as if each node were recorded the moment it finished: a node claimed after
-- one that failed its run is never run (SKIPPED, "run failed"), one claimed before it
-- keeps its success, and inputs and outputs reach the tables byte for byte.
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 1100000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE FUNCTION public.rounds_echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
CREATE FUNCTION public.rounds_fail(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'refused: "%"', input->>'why'; END $$;
SELECT count(orchestration.register_agent(95, spec::jsonb)) AS registered FROM (VALUES
  ('{"name": "echo", "type": "RULE", "function": "public.rounds_echo", "capabilities": [{"name": "say"}]}'),
  ('{"name": "refuse", "type": "RULE", "function": "public.rounds_fail", "capabilities": [{"name": "say"}]}')) s(spec);

-- Five independent nodes (claimed together, in key order) and one that depends on the
-- first. a_ok succeeds; b_quoted carries text an array literal must escape; c_retry fails
-- with a retry left, which does not end the run; d_boom fails for good, which does;
-- e_after, claimed after it, is not run.
SELECT orchestration.create_workflow(95, $${"name": "mixed", "nodes": [
  {"id": "a_ok", "agent": "echo", "action": "say", "inputs": {"n": 1}},
  {"id": "b_quoted", "agent": "echo", "action": "say", "inputs": {
     "quotes": "say \"hi\"", "backslash": "C:\\dir\\", "braces": "{a,b} {}", "null_word": "NULL",
     "empty": "", "lines": "one\ntwo\ttab", "unicode": "žluťoučký kůň ☃", "list": [1, null, "x,y"]}},
  {"id": "c_retry", "agent": "refuse", "action": "say", "inputs": {"why": "later"}, "retries": 1, "retry_backoff_seconds": 30},
  {"id": "d_boom", "agent": "refuse", "action": "say", "inputs": {"why": "no \"never\""}},
  {"id": "e_after", "agent": "echo", "action": "say", "inputs": {"n": 5}},
  {"id": "z_after", "agent": "echo", "action": "say", "depends_on": ["a_ok"]}]}$$) > 0 AS created;
SELECT orchestration.start_workflow(95, 'mixed') AS run_id \gset
SELECT r->>'status' AS status, r->>'error' AS error FROM orchestration.wait_for_run(:run_id, '30 seconds') r;
-- The first four ran in one round; the failure did not undo the successes before it, and
-- e_after has no attempt.
SELECT count(DISTINCT scheduler_round) AS rounds, count(*) AS attempts,
       string_agg(node_key, ' ' ORDER BY id) AS attempted
FROM orchestration.agent_runs WHERE run_id = :run_id;
SELECT node_key, status, attempt, error FROM orchestration.node_runs WHERE run_id = :run_id ORDER BY level, node_key;
SELECT node_key, skip_reason FROM orchestration.workflow_run_nodes WHERE run_id = :run_id AND status = 'SKIPPED';
-- The output is the input, unchanged, in the node and in its attempt.
SELECT n.output = n.resolved_input AS node_output_is_input,
       a.output_json = a.input_json AS attempt_output_is_input,
       n.output = (SELECT inputs FROM orchestration.workflow_nodes w
                   WHERE w.workflow_id = (SELECT workflow_id FROM orchestration.workflow_runs WHERE id = :run_id)
                     AND w.node_key = 'b_quoted') AS same_as_defined,
       n.output->>'quotes' AS quotes, n.output->>'backslash' AS backslash, n.output->'list' AS list
FROM orchestration.workflow_run_nodes n JOIN orchestration.agent_runs a ON a.run_node_id = n.id
WHERE n.run_id = :run_id AND n.node_key = 'b_quoted';
-- Events in claim order: each node's outcome, then what the failure did to the rest.
SELECT type, substring(subject FROM 'node/(.*)$') AS node, payload->'data'->>'status' AS status
FROM orchestration.events WHERE run_id = :run_id ORDER BY id;

-- Twenty independent RULE nodes are claimed in one round: the concurrency limits
-- (orchestration.max_concurrent_nodes, 16 here) count containers only.
SELECT orchestration.create_workflow(95, jsonb_build_object('name', 'twenty', 'nodes',
  (SELECT jsonb_agg(jsonb_build_object('id', 'n' || i, 'agent', 'echo', 'action', 'say')) FROM generate_series(1, 20) i))) > 0 AS created;
SELECT orchestration.start_workflow(95, 'twenty') AS run_id \gset
SELECT orchestration.wait_for_run(:run_id, '30 seconds')->>'status' AS status;
SELECT current_setting('orchestration.max_concurrent_nodes') AS limit,
       count(DISTINCT scheduler_round) AS rounds, count(*) AS attempts
FROM orchestration.agent_runs WHERE run_id = :run_id;

-- claimed_node_details, through which claim_nodes and record_attempts return their nodes,
-- is inlined by the planner into their statements (a SET clause, STRICT or SECURITY
-- DEFINER would make it a function call per chain step again).
DO $$
DECLARE
  line text;
  inlined boolean := true;
BEGIN
  SET LOCAL search_path = pg_catalog, pg_temp;
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) SELECT * FROM orchestration.claimed_node_details(ARRAY[1::bigint])' LOOP
    IF line LIKE '%Function Scan on claimed_node_details%' THEN
      inlined := false;
    END IF;
  END LOOP;
  RAISE NOTICE 'claimed_node_details inlined: %', inlined;
END $$;

-- record_attempts refuses arrays of different lengths and changes nothing.
SELECT orchestration.record_attempts(ARRAY[1, 2]::bigint[], ARRAY[true], ARRAY['{}'::jsonb, '{}'],
                                     ARRAY[NULL::jsonb, NULL], ARRAY[NULL::text, NULL],
                                     ARRAY[now(), now()], ARRAY[now(), now()], 1);

-- Deleting a run deletes its nodes (the runs_deleted trigger: run_id is not a foreign
-- key) and their attempts (by their run: nor is run_node_id a key). The trigger acts as
-- the owner, as a key's action did: a role that may delete runs (a retention job's, say)
-- need not be able to write their nodes and attempts.
CREATE ROLE rounds_janitor BYPASSRLS;
GRANT USAGE ON SCHEMA orchestration TO rounds_janitor;
GRANT SELECT, DELETE ON orchestration.workflow_runs, orchestration.agents TO rounds_janitor;
BEGIN;
-- An attempt whose node is gone already (recorded while a DBA deleted the node alone:
-- nothing waits for the node) goes with its run too.
INSERT INTO orchestration.agent_runs (project_id, agent_name, run_id, run_node_id, attempt, input_json, status)
VALUES (95, 'echo', :run_id, -1, 1, '{}', 'SUCCESS');
SET LOCAL ROLE rounds_janitor;
DELETE FROM orchestration.workflow_runs WHERE id = :run_id;
RESET ROLE;
SELECT (SELECT count(*) FROM orchestration.workflow_run_nodes WHERE run_id = :run_id) AS nodes_left,
       (SELECT count(*) FROM orchestration.agent_runs WHERE run_id = :run_id) AS attempts_left;
ROLLBACK;
SELECT count(*) AS attempts_kept_after_rollback FROM orchestration.agent_runs WHERE run_id = :run_id;
-- So does TRUNCATE ... CASCADE (the runs_truncated trigger): nothing is left behind.
BEGIN;
TRUNCATE orchestration.workflow_runs CASCADE;
SELECT (SELECT count(*) FROM orchestration.workflow_run_nodes) AS nodes_left,
       (SELECT count(*) FROM orchestration.agent_runs) AS attempts_left;
ROLLBACK;
-- Nodes deleted by themselves (a DBA's statement) take their attempts with them, and only
-- theirs; so does truncating the nodes (the nodes_truncated trigger).
BEGIN;
SELECT count(*) FILTER (WHERE node_key = 'n1') AS n1_attempts, count(*) AS run_attempts
FROM orchestration.agent_runs WHERE run_id = :run_id \gset
SELECT :n1_attempts > 0 AS n1_was_attempted, :run_attempts > :n1_attempts AS others_were_too;
DELETE FROM orchestration.workflow_run_nodes WHERE run_id = :run_id AND node_key = 'n1';
SELECT count(*) FILTER (WHERE node_key = 'n1') AS n1_attempts_left,
       count(*) = :run_attempts - :n1_attempts AS the_others_kept
FROM orchestration.agent_runs WHERE run_id = :run_id;
TRUNCATE orchestration.workflow_run_nodes CASCADE;
SELECT count(*) AS attempts_left_after_truncate FROM orchestration.agent_runs;
ROLLBACK;

-- Deleting an agent leaves its finished runs' nodes and attempts without one (agent_id
-- NULL, the attempt keeps the name): the agents_deleted trigger, as agent_id is not a
-- foreign key.
SELECT orchestration.register_agent(95, '{"name": "once", "type": "RULE", "function": "public.rounds_echo", "capabilities": [{"name": "say"}]}') AS once_id \gset
SELECT orchestration.create_workflow(95, '{"name": "once", "nodes": [{"id": "only", "agent": "once", "action": "say"}]}') AS once_workflow \gset
SELECT orchestration.start_workflow(95, 'once') AS once_run \gset
SELECT r->>'status' AS status FROM orchestration.wait_for_run(:once_run, '30 seconds') r;
SELECT orchestration.update_workflow(:once_workflow, '{"name": "once", "nodes": [{"id": "only", "agent": "echo", "action": "say"}]}') IS NOT NULL AS moved_to_echo;
-- Deleted by the table's owner's grant, not delete_agent (which is checked elsewhere):
-- the trigger acts as the owner here too.
SET ROLE rounds_janitor;
DELETE FROM orchestration.agents WHERE id = :once_id;
RESET ROLE;
SELECT count(*) AS nodes, count(agent_id) AS with_agent FROM orchestration.workflow_run_nodes WHERE run_id = :once_run;
SELECT agent_id, agent_name, status FROM orchestration.agent_runs WHERE run_id = :once_run;

REVOKE ALL ON orchestration.workflow_runs, orchestration.agents FROM rounds_janitor;
REVOKE USAGE ON SCHEMA orchestration FROM rounds_janitor;
DROP ROLE rounds_janitor;
