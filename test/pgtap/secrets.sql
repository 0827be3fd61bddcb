-- A secret value is stored, but no role other than the extension owner can read it, and
-- it never comes back out through a function, a table or a view.
BEGIN;
SELECT plan(11);

CREATE ROLE tap_secret_admin LOGIN;
GRANT orchestration_admin TO tap_secret_admin;
SELECT orchestration.grant_project('tap_secret_admin', 7);
-- The value is made at run time so that no statement text contains it.
SELECT set_config('tap.secret', 'tap-' || md5(random()::text), true);

SET ROLE tap_secret_admin;
SELECT lives_ok($$SELECT orchestration.set_secret(7, 'API_TOKEN', current_setting('tap.secret'))$$, 'set_secret stores a secret');
SELECT lives_ok($$SELECT orchestration.register_agent(7, '{"name": "uses-token", "type": "SCRIPT", "image": "busybox", "secrets": ["API_TOKEN"], "capabilities": [{"name": "run"}]}')$$,
                'an agent lists the secret by name');
SELECT throws_ok($$SELECT value FROM orchestration.secrets$$, '42501', 'permission denied for table secrets', 'the value column cannot be selected');
SELECT is((SELECT array_agg(name || ':' || array_to_string(used_by, ',')) FROM orchestration.list_secrets(7)),
          ARRAY['API_TOKEN:uses-token'], 'list_secrets shows the name and who uses it');
SELECT unialike((SELECT t::text FROM orchestration.list_secrets(7) t), '%' || current_setting('tap.secret') || '%', 'list_secrets never shows the value');
SELECT unialike(orchestration.get_agent((SELECT id FROM orchestration.agents WHERE name = 'uses-token'))::text,
                '%' || current_setting('tap.secret') || '%', 'get_agent never shows the value');
SELECT unialike((SELECT string_agg(t::text, ' ') FROM orchestration.list_agents(7) t), '%' || current_setting('tap.secret') || '%', 'list_agents never shows the value');

-- Every table and view this role can read, row by row.
CREATE FUNCTION pg_temp.rows_containing(needle text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  rel regclass;
  found bigint := 0;
  n bigint;
BEGIN
  FOR rel IN SELECT c.oid FROM pg_class c
             WHERE c.relnamespace = 'orchestration'::regnamespace AND c.relkind IN ('r', 'v', 'm')
               AND has_table_privilege(c.oid, 'SELECT')
  LOOP
    EXECUTE format('SELECT count(*) FROM %s t WHERE t::text LIKE $1', rel) INTO n USING '%' || needle || '%';
    found := found + n;
  END LOOP;
  RETURN found;
END $$;
SELECT is(pg_temp.rows_containing(current_setting('tap.secret')), 0::bigint, 'no readable table or view holds the value');
SELECT lives_ok($$SELECT orchestration.set_secret(7, 'API_TOKEN', current_setting('tap.secret') || '-rotated')$$, 'set_secret replaces a value');
RESET ROLE;

-- The owner (and so the worker that injects it into containers) does have it.
SELECT is((SELECT value FROM orchestration.secrets WHERE project_id = 7 AND name = 'API_TOKEN'),
          current_setting('tap.secret') || '-rotated', 'the value is stored for the worker to inject');
SET ROLE tap_secret_admin;
SELECT lives_ok($$SELECT orchestration.delete_secret(7, 'API_TOKEN')$$, 'delete_secret removes it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
