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
SELECT status, responded_by, notes FROM orchestration.workflow_approvals WHERE run_id = :first_run;
SELECT orchestration.reject_node(:second_run, 'deploy', 'not today');
SELECT orchestration.wait_for_run(:second_run, '30')->>'status' AS status;
SELECT orchestration.approve_node(:first_run, 'deploy');
SELECT orchestration.approve_node(:first_run, 'deplyo');
SELECT orchestration.approve_node(99999999, 'deploy');

-- The same names in results and events as in tables and views: run_id, node_key.
SELECT r ? 'run_id' AND NOT r ? 'id' AS says_run_id,
       r->'nodes'->0 ? 'node_key' AND NOT r->'nodes'->0 ? 'id' AS says_node_key
FROM orchestration.wait_for_run(:first_run, 0) r;
SELECT bool_and(payload->'data' ? 'node_key' AND payload->'data' ? 'run_id') AS events_say_node_key
FROM orchestration.events WHERE run_id = :first_run AND subject LIKE '%/node/%';
SELECT count(*) = count(node_key) AS every_attempt_has_its_node_key
FROM orchestration.agent_runs WHERE run_id = :first_run;

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
SELECT r->>'run_id' = :'third_run' AS in_order, r->>'status' AS status
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

-- Idempotent definitions: the same spec again changes nothing and returns the same id; a
-- changed one updates (a workflow gets a new version, its runs keep theirs).
SELECT orchestration.put_agent(121, '{"name": "echo", "type": "RULE", "function": "public.callers_echo", "description": "says it back", "capabilities": [{"name": "say"}]}') = :echo_id AS same_id;
SELECT updated_at AS echo_updated FROM orchestration.agents WHERE id = :echo_id \gset
SELECT orchestration.put_agent(121, '{"name": "echo", "type": "RULE", "function": "public.callers_echo", "description": "says it back", "capabilities": [{"name": "say"}]}') = :echo_id AS same_id_again,
       (SELECT updated_at FROM orchestration.agents WHERE id = :echo_id) = :'echo_updated' AS unchanged;
SELECT orchestration.put_agent(121, '{"name": "echo", "type": "RULE", "function": "public.callers_echo", "description": "changed", "capabilities": [{"name": "say"}]}') = :echo_id AS same_id_changed;
SELECT description, updated_at > :'echo_updated' AS updated FROM orchestration.agents WHERE id = :echo_id;
SELECT orchestration.put_agent(121, '{"name": "fresh", "type": "RULE", "function": "public.callers_echo", "capabilities": [{"name": "say"}]}') > :echo_id AS registered;
SELECT orchestration.put_workflow(121, '{"name": "solo", "nodes": [{"id": "a", "agent": "echo", "action": "say"}]}') AS solo_id \gset
SELECT orchestration.put_workflow(121, '{"name": "solo", "nodes": [{"id": "a", "agent": "echo", "action": "say"}]}') = :solo_id AS same_id;
SELECT orchestration.get_workflow(:solo_id)->'version' AS version;
SELECT orchestration.start_workflow(121, 'solo') AS solo_run \gset
SELECT orchestration.put_workflow(121, '{"name": "solo", "nodes": [{"id": "a", "agent": "echo", "action": "say"}, {"id": "b", "agent": "echo", "action": "say"}]}') = :solo_id AS same_id_changed;
SELECT orchestration.get_workflow(:solo_id)->'version' AS version;
SELECT workflow_version, (SELECT count(*) FROM orchestration.workflow_run_nodes WHERE run_id = :solo_run) AS nodes
FROM orchestration.workflow_runs WHERE id = :solo_run;
SELECT orchestration.archive_workflow(121, 'solo');
SELECT orchestration.put_workflow(121, '{"name": "solo", "nodes": [{"id": "a", "agent": "echo", "action": "say"}, {"id": "b", "agent": "echo", "action": "say"}]}') = :solo_id AS same_id;
SELECT orchestration.get_workflow(:solo_id)->>'status' AS status_after_put, orchestration.get_workflow(:solo_id)->'version' AS version;
SELECT orchestration.put_workflow(121, NULL);
SELECT orchestration.put_agent(121, '{"name": "echo", "type": "RULE"}');

-- A RULE function learns what it was called for: one function, two capabilities.
CREATE FUNCTION public.callers_tools(input jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT CASE orchestration.rule_call()->>'capability'
           WHEN 'upper' THEN jsonb_build_object('text', upper(input->>'text'))
           WHEN 'length' THEN jsonb_build_object('length', length(input->>'text')) END
         || jsonb_build_object('call', orchestration.rule_call() - 'run_id') $$;
SELECT orchestration.put_agent(121, '{"name": "tools", "type": "RULE", "function": "public.callers_tools", "capabilities": [{"name": "upper"}, {"name": "length"}]}') > 0 AS registered;
SELECT orchestration.put_workflow(121, $${"name": "text", "nodes": [
  {"id": "shout", "agent": "tools", "action": "upper", "inputs": {"text": "{{ context.text }}"}},
  {"id": "count", "agent": "tools", "action": "length", "inputs": {"text": "{{ context.text }}"}}]}$$) > 0 AS created;
SELECT orchestration.start_workflow(121, 'text', '{"text": "hello"}') AS text_run \gset
SELECT orchestration.wait_for_run(:text_run, 30)->>'status' AS status;
SELECT node_key, output FROM orchestration.workflow_run_nodes WHERE run_id = :text_run ORDER BY node_key;
SELECT orchestration.rule_call() IS NULL AS null_outside_an_attempt;

-- Trigger starts: chosen columns as the context, and the run id found in the same
-- transaction (a rolled-back savepoint takes its run with it).
CREATE TABLE public.callers_orders (id int PRIMARY KEY, customer text, total numeric);
CREATE TRIGGER callers_start AFTER INSERT OR DELETE ON public.callers_orders FOR EACH ROW
  EXECUTE FUNCTION orchestration.start_workflow_trigger('121', 'solo', 'order_id=id', 'customer');
BEGIN;
SELECT orchestration.started_runs() AS none_yet;
INSERT INTO public.callers_orders VALUES (7, 'acme', 10);
SAVEPOINT s;
INSERT INTO public.callers_orders VALUES (8, 'undone', 1);
ROLLBACK TO SAVEPOINT s;
SAVEPOINT t;
INSERT INTO public.callers_orders VALUES (9, 'kept', 2);
RELEASE SAVEPOINT t;
SELECT cardinality(orchestration.started_runs()) AS started,
       (SELECT array_agg(context ORDER BY id) FROM orchestration.workflow_runs WHERE id = ANY (orchestration.started_runs())) AS contexts;
DELETE FROM public.callers_orders WHERE id = 7;
SELECT (SELECT context FROM orchestration.workflow_runs WHERE id = (orchestration.started_runs())[3]) AS delete_context;
COMMIT;
SELECT orchestration.started_runs() AS none_after_commit;
CREATE TRIGGER callers_bad AFTER UPDATE ON public.callers_orders FOR EACH ROW
  EXECUTE FUNCTION orchestration.start_workflow_trigger('121', 'solo', 'who=customer_name');
UPDATE public.callers_orders SET total = 3 WHERE id = 9;
DROP TRIGGER callers_bad ON public.callers_orders;
CREATE TRIGGER callers_bad AFTER UPDATE ON public.callers_orders FOR EACH ROW
  EXECUTE FUNCTION orchestration.start_workflow_trigger('121', 'solo', '=id');
UPDATE public.callers_orders SET total = 3 WHERE id = 9;

-- A put by another role vouches anew for a RULE agent's function: the same spec by an admin
-- who may not execute the function is refused, not taken as "nothing to do" (the agent
-- would go on running as the role that set it, perhaps one removed from the project).
CREATE FUNCTION public.callers_private(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
REVOKE EXECUTE ON FUNCTION public.callers_private(jsonb) FROM PUBLIC;
CREATE ROLE callers_other_admin;
GRANT orchestration_admin TO callers_other_admin;
SELECT orchestration.grant_project('callers_other_admin', 121);
SELECT orchestration.put_agent(121, '{"name": "private", "type": "RULE", "function": "public.callers_private", "capabilities": [{"name": "say"}]}') > 0 AS registered;
SET ROLE callers_other_admin;
SELECT orchestration.put_agent(121, '{"name": "private", "type": "RULE", "function": "public.callers_private", "capabilities": [{"name": "say"}]}');
RESET ROLE;
GRANT EXECUTE ON FUNCTION public.callers_private(jsonb) TO callers_other_admin;
SET ROLE callers_other_admin;
SELECT orchestration.put_agent(121, '{"name": "private", "type": "RULE", "function": "public.callers_private", "capabilities": [{"name": "say"}]}') > 0 AS put;
RESET ROLE;
SELECT runs_as FROM orchestration.agents WHERE project_id = 121 AND name = 'private';

-- The agent now runs as callers_other_admin. Once that role loses the project, its
-- function (which it may still change) is not run on the project's input any more.
SELECT orchestration.put_workflow(121, '{"name": "private", "nodes": [{"id": "p", "agent": "private", "action": "say"}]}') > 0 AS created;
SELECT orchestration.start_workflow(121, 'private') AS private_run \gset
SELECT orchestration.wait_for_run(:private_run, 30)->>'status' AS while_granted;
SELECT orchestration.revoke_project('callers_other_admin', 121);
SELECT orchestration.start_workflow(121, 'private') AS private_run \gset
SELECT r->>'status' AS after_revoke, r->'nodes'->0->>'error' AS error FROM orchestration.wait_for_run(:private_run, 30) r;

-- A table owned by a role whose name needs quoting starts runs too.
CREATE ROLE "Callers-Owner";
GRANT orchestration_operator TO "Callers-Owner";
SELECT orchestration.grant_project('Callers-Owner', 121);
CREATE TABLE public.callers_quoted (id int);
CREATE TRIGGER callers_quoted_start AFTER INSERT ON public.callers_quoted FOR EACH ROW
  EXECUTE FUNCTION orchestration.start_workflow_trigger('121', 'solo', 'id');
ALTER TABLE public.callers_quoted OWNER TO "Callers-Owner";
BEGIN;
INSERT INTO public.callers_quoted VALUES (1);
SELECT cardinality(orchestration.started_runs()) AS started;
-- ... and the trigger finds its function whatever types the writer's search_path shows
-- first (a temporary type named jsonb).
CREATE TEMP TABLE jsonb (x int);
INSERT INTO public.callers_quoted VALUES (2);
SELECT cardinality(orchestration.started_runs()) AS started;
ROLLBACK;

-- wait_for_run refuses a run started in a savepoint of this transaction, or changed in it,
-- instead of waiting out its timeout.
BEGIN;
SAVEPOINT s;
SELECT orchestration.start_workflow(121, 'solo') AS savepoint_run \gset
SELECT orchestration.wait_for_run(:savepoint_run, 5);
ROLLBACK;
SELECT orchestration.start_workflow(121, 'text', '{"text": "x"}') AS later_run \gset
SELECT orchestration.wait_for_run(:later_run, 30)->>'status' AS status;
SELECT orchestration.start_workflow(121, 'release', '{"v": "4"}') AS gated_run \gset
SELECT orchestration.wait_for_run(:gated_run, 30)->>'status' AS status;
BEGIN;
SELECT orchestration.approve_node(:gated_run, 'deploy');
SELECT orchestration.wait_for_run(:gated_run, 5, 'finished');
ROLLBACK;
SELECT orchestration.reject_node(:gated_run, 'deploy');

-- Roles outlive the database: leave none behind.
DROP TABLE public.callers_quoted;
SELECT orchestration.revoke_project('Callers-Owner', 121);
REVOKE EXECUTE ON FUNCTION public.callers_private(jsonb) FROM callers_other_admin;
DROP ROLE callers_other_admin, "Callers-Owner";
