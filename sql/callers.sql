-- The API as a caller addresses things: agents and workflows by project and name, runs
-- listed by what a person knows, approvals answered by run and node, events read after
-- an id, and waits that say what they wait for and take the timeout as a number.
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 1200000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE FUNCTION public.callers_echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT orchestration.register_agent(121, '{"name": "echo", "type": "RULE", "function": "public.callers_echo", "capabilities": [{"name": "say"}]}') AS echo_id \gset
SELECT orchestration.register_agent(121, '{"name": "gate", "type": "RULE", "function": "public.callers_echo", "risk_level": "APPROVAL_REQUIRED", "capabilities": [{"name": "say"}]}') > 0 AS registered;
SELECT orchestration.create_workflow(121, $${"name": "release", "nodes": [
  {"id": "build", "agent": "echo", "action": "say", "inputs": {"v": "{{ context.v }}"}},
  {"id": "deploy", "agent": "gate", "action": "say", "depends_on": ["build"]}]}$$) AS release_id \gset

-- By name.
SELECT orchestration.find_agent(121, 'echo') = :echo_id AS same_agent,
       orchestration.find_workflow(121, 'release') = :release_id AS same_workflow;
SELECT orchestration.get_agent(121, 'echo')->>'function' AS function,
       orchestration.get_workflow(121, 'release')->'nodes'->1->>'id' AS second_node;
SELECT orchestration.update_agent(121, 'echo', '{"name": "echo", "type": "RULE", "function": "public.callers_echo", "description": "says it back", "capabilities": [{"name": "say"}]}')->>'description' AS description;
SELECT orchestration.workflow_graph(orchestration.find_workflow(121, 'release')) AS graph;
SELECT orchestration.find_agent(121, 'ecoh');
SELECT orchestration.find_workflow(122, 'release');
SELECT orchestration.get_workflow(121, NULL);

-- Runs: listed newest first, filtered.
SELECT orchestration.start_workflow(121, 'release', '{"v": "1"}') AS first_run \gset
SELECT orchestration.start_workflow(121, 'release', '{"v": "2"}') AS second_run \gset
SELECT r->>'status' AS status FROM orchestration.wait_for_runs(ARRAY[:first_run, :second_run], 30) r;
SELECT run_id = :second_run AS newest_first, workflow, status, nodes, succeeded, waiting
FROM orchestration.list_runs(121) LIMIT 1;
SELECT count(*) AS waiting FROM orchestration.list_runs(121, 'WAITING_APPROVAL', 'release');
SELECT count(*) AS none_succeeded FROM orchestration.list_runs(121, status => 'SUCCESS');
SELECT count(*) AS at_most_one FROM orchestration.list_runs(max_rows => 1);
SELECT count(*) AS since_tomorrow FROM orchestration.list_runs(121, since => now() + interval '1 day');
SELECT * FROM orchestration.list_runs(121, 'DONE');

-- Approvals by run and node.
SELECT orchestration.approve_node(:first_run, 'deploy', 'looks good');
SELECT r->>'status' AS status, r->>'timed_out' AS timed_out
FROM orchestration.wait_for_run(:first_run, 30, 'finished') r;
SELECT status, responded_by, notes FROM orchestration.workflow_approvals WHERE workflow_run_id = :first_run;
SELECT orchestration.reject_node(:second_run, 'deploy', 'not today');
SELECT orchestration.wait_for_run(:second_run, '30')->>'status' AS status;
SELECT orchestration.approve_node(:first_run, 'deploy');
SELECT orchestration.approve_node(:first_run, 'deplyo');
SELECT orchestration.approve_node(99999999, 'deploy');

-- Events after an id: oldest first, a page at a time.
SELECT min(id) - 1 AS before_first FROM orchestration.events WHERE run_id = :first_run \gset
SELECT count(*) AS page, bool_and(id > :before_first) AS all_after_the_id,
       array_agg(id) = array_agg(id ORDER BY id) AS oldest_first
FROM orchestration.events_after(:before_first, 3);
SELECT count(*) = (SELECT count(*) FROM orchestration.events WHERE id > :before_first) AS all_after
FROM orchestration.events_after(:before_first);
SELECT * FROM orchestration.events_after(NULL);

-- Waits: what to wait for, and the timeout as an interval, a number or text.
SELECT orchestration.start_workflow(121, 'release', '{"v": "3"}') AS third_run \gset
SELECT orchestration.wait_for_run(:third_run)->>'status' AS settled;
SELECT r->>'status' AS status, r->>'timed_out' AS timed_out
FROM orchestration.wait_for_run(:third_run, 0.2, 'finished') r;
SELECT orchestration.wait_for_run(:third_run, interval '0 s', 'finished')->>'timed_out' AS interval_form,
       orchestration.wait_for_run(:third_run, 0::smallint, 'finished')->>'timed_out' AS smallint_form,
       orchestration.wait_for_run(:third_run, '0 seconds', 'finished')->>'timed_out' AS text_form;
SELECT r->>'id' = :'third_run' AS in_order, r->>'status' AS status
FROM orchestration.wait_for_runs(ARRAY[:third_run, :first_run], 0) r;
SELECT orchestration.wait_for_run(:third_run, 30, 'done');
SELECT orchestration.wait_for_run(:third_run, -1);
SELECT orchestration.wait_for_run(:third_run, 'soon');
SELECT orchestration.wait_for_runs(ARRAY[:third_run, NULL]);
SELECT orchestration.wait_for_runs(ARRAY[:third_run, 99999999]);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT orchestration.wait_for_run(:third_run, 1);
ROLLBACK;
SELECT orchestration.cancel_run(:third_run);
