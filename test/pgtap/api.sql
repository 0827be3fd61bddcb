-- The SQL API exists with the documented signatures, and every table, view and function
-- explains itself in \d+ and \df+.
BEGIN;
SELECT plan(19);

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
