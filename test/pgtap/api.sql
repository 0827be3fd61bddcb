-- The SQL API exists with the documented signatures, and every table, view and function
-- explains itself in \d+ and \df+.
BEGIN;
SELECT plan(54);

SELECT has_extension('pg_orchestration');
SELECT function_returns('orchestration', 'register_agent', ARRAY['integer', 'jsonb'], 'bigint');
SELECT function_returns('orchestration', 'update_agent', ARRAY['bigint', 'jsonb'], 'jsonb');
SELECT function_returns('orchestration', 'delete_agent', ARRAY['bigint'], 'void');
SELECT function_returns('orchestration', 'get_agent', ARRAY['bigint'], 'jsonb');
SELECT function_returns('orchestration', 'list_agents', ARRAY['integer'], 'setof record');
SELECT function_returns('orchestration', 'set_secret', ARRAY['integer', 'text', 'text'], 'void');
SELECT function_returns('orchestration', 'delete_secret', ARRAY['integer', 'text'], 'void');
SELECT function_returns('orchestration', 'list_secrets', ARRAY['integer'], 'setof record');
SELECT function_returns('orchestration', 'grant_project', ARRAY['name', 'integer'], 'void');
SELECT function_returns('orchestration', 'revoke_project', ARRAY['name', 'integer'], 'void');
SELECT function_returns('orchestration', 'normalize_agent_spec', ARRAY['jsonb'], 'jsonb');
SELECT function_returns('orchestration', 'create_workflow', ARRAY['integer', 'jsonb'], 'bigint');
SELECT function_returns('orchestration', 'update_workflow', ARRAY['bigint', 'jsonb'], 'jsonb');
SELECT function_returns('orchestration', 'archive_workflow', ARRAY['bigint'], 'void');
SELECT function_returns('orchestration', 'get_workflow', ARRAY['bigint'], 'jsonb');
SELECT function_returns('orchestration', 'workflow_levels', ARRAY['bigint'], 'setof record');
SELECT function_returns('orchestration', 'start_workflow', ARRAY['integer', 'text', 'jsonb', 'text', 'integer'], 'bigint');
SELECT function_returns('orchestration', 'start_workflow_trigger', ARRAY[]::text[], 'trigger');
SELECT function_returns('orchestration', 'cancel_run', ARRAY['bigint', 'text'], 'void');
SELECT function_returns('orchestration', 'retry_run', ARRAY['bigint'], 'void');
SELECT function_returns('orchestration', 'wait_for_run', ARRAY['bigint', 'interval', 'text'], 'jsonb');
SELECT function_returns('orchestration', 'wait_for_run', ARRAY['bigint', 'double precision', 'text'], 'jsonb');
SELECT function_returns('orchestration', 'wait_for_run', ARRAY['bigint', 'text', 'text'], 'jsonb');
SELECT function_returns('orchestration', 'wait_for_runs', ARRAY['bigint[]', 'interval', 'text'], 'setof jsonb');
SELECT function_returns('orchestration', 'list_runs', ARRAY['integer', 'text', 'text', 'timestamp with time zone', 'integer'], 'setof orchestration.run_summary');
SELECT function_returns('orchestration', 'events_after', ARRAY['bigint', 'integer'], 'setof record');
SELECT function_returns('orchestration', 'approve_node', ARRAY['bigint', 'text', 'text'], 'void');
SELECT function_returns('orchestration', 'reject_node', ARRAY['bigint', 'text', 'text'], 'void');
SELECT function_returns('orchestration', 'find_agent', ARRAY['integer', 'text'], 'bigint');
SELECT function_returns('orchestration', 'find_workflow', ARRAY['integer', 'text'], 'bigint');
SELECT function_returns('orchestration', 'put_agent', ARRAY['integer', 'jsonb'], 'bigint');
SELECT function_returns('orchestration', 'put_workflow', ARRAY['integer', 'jsonb'], 'bigint');
SELECT function_returns('orchestration', 'started_runs', ARRAY[]::text[], 'bigint[]');
SELECT function_returns('orchestration', 'rule_call', ARRAY[]::text[], 'jsonb');
SELECT function_returns('orchestration', 'approve', ARRAY['bigint', 'text'], 'void');
SELECT function_returns('orchestration', 'reject', ARRAY['bigint', 'text'], 'void');
SELECT has_view('orchestration', 'run_summary', 'view run_summary');
SELECT has_view('orchestration', 'node_runs', 'view node_runs');
SELECT has_view('orchestration', 'pending_approvals', 'view pending_approvals');
SELECT is((SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'orchestration'::regnamespace AND c.relkind = 'v'
             AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)), 0::bigint,
          'every view applies row-level security as the caller (security_invoker)');
SELECT is((SELECT pg_get_function_arguments('orchestration.start_workflow(integer, text, jsonb, text, integer)'::regprocedure)),
          'project_id integer, workflow text, context jsonb DEFAULT ''{}''::jsonb, idempotency_key text DEFAULT NULL::text, priority integer DEFAULT 0',
          'start_workflow''s context defaults to {}, its idempotency key to none, its priority to 0');
SELECT is((SELECT pg_get_function_arguments('orchestration.wait_for_run(bigint, interval, text)'::regprocedure)),
          'run_id bigint, timeout interval DEFAULT ''00:01:00''::interval, until text DEFAULT ''settled''::text',
          'wait_for_run waits 60 seconds by default, until the run is settled');

-- One name for one thing: a run is run_id, a node node_key, in every table and view.
SELECT is_empty($$SELECT table_name || '.' || column_name FROM information_schema.columns
                  WHERE table_schema = 'orchestration'
                    AND (column_name IN ('workflow_run_id', 'node', 'node_id', 'run', 'node_name')
                         OR (column_name = 'id' AND table_name IN ('node_runs', 'pending_approvals', 'run_summary')))$$,
                'no table or view names a run or a node otherwise than run_id and node_key');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'orchestration'::regnamespace
                    AND obj_description(p.oid, 'pg_proc') IS NULL$$,
                'every function has a COMMENT');
SELECT is_empty($$SELECT c.relname FROM pg_class c
                  WHERE c.relnamespace = 'orchestration'::regnamespace AND c.relkind IN ('r', 'v', 'm')
                    AND obj_description(c.oid, 'pg_class') IS NULL$$,
                'every table and view has a COMMENT');
SELECT is_empty($$SELECT c.relname FROM pg_class c
                  WHERE c.relnamespace = 'orchestration'::regnamespace AND c.relkind = 'r'
                    AND NOT c.relrowsecurity$$,
                'every table has row-level security enabled');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'orchestration'::regnamespace AND p.prosecdef
                    AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')$$,
                'every SECURITY DEFINER function has a fixed search_path');
-- The audit of the class "a definer function reaches the caller's objects": pg_temp is
-- searched last (first if left out), no SQL or PL/pgSQL function of the extension makes
-- a temporary object, and every function the extension runs as its owner is SQL or
-- PL/pgSQL with that search_path (a C function would have to be read).
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'orchestration'::regnamespace AND p.prosecdef
                    AND NOT 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig)$$,
                'every SECURITY DEFINER function searches pg_catalog first and pg_temp last');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'orchestration'::regnamespace
                    AND p.prosrc ~* '\m(temp|temporary)\s+(table|view|sequence)'$$,
                'no function of the extension creates a temporary object');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                  WHERE p.pronamespace = 'orchestration'::regnamespace AND p.prosecdef
                    AND l.lanname NOT IN ('sql', 'plpgsql')$$,
                'every SECURITY DEFINER function is SQL or PL/pgSQL');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'orchestration'::regnamespace
                    AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
                'no function is executable by PUBLIC');
SELECT ok(NOT has_function_privilege('orchestration_admin', 'orchestration.selftest_error_boundary(text)', 'EXECUTE'),
          'the error-boundary self test is for superusers only');
SELECT ok(NOT has_table_privilege('orchestration_admin', 'orchestration.secrets', 'SELECT'),
          'no orchestration role may read the secrets table');

SELECT * FROM finish();
ROLLBACK;
