-- Each kind of bad registry input: the error names the field, has the right SQLSTATE,
-- and the registry is exactly as it was before.
BEGIN;
SELECT plan(17);

CREATE FUNCTION public.tap_echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
CREATE FUNCTION public.tap_text(input text) RETURNS text LANGUAGE sql AS $$ SELECT input $$;
SELECT orchestration.register_agent(3, '{"name": "taken", "type": "RULE", "function": "public.tap_echo", "capabilities": [{"name": "run"}]}');
CREATE TEMP TABLE before AS
  SELECT (SELECT md5(coalesce(string_agg(a::text, ',' ORDER BY a.id), '')) FROM orchestration.agents a) AS agents,
         (SELECT md5(coalesce(string_agg(c::text, ',' ORDER BY c.id), '')) FROM orchestration.agent_capabilities c) AS capabilities;

SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"type": "RULE", "function": "public.tap_echo", "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'agent spec field "name" is required', 'a missing field');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "API", "image": "busybox", "allow_network": 1, "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'invalid agent spec field "allow_network": must be true or false, not 1', 'a mistyped field');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "BASH", "image": "busybox", "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'invalid agent spec field "type": "BASH" is not one of LLM, RULE, API, SCRIPT', 'an unknown type');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "API", "image": "busybox", "risk_level": "MEDIUM", "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'invalid agent spec field "risk_level": "MEDIUM" is not one of AUTO, APPROVAL_REQUIRED', 'an unknown risk level');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "taken", "type": "RULE", "function": "public.tap_echo", "capabilities": [{"name": "a"}]}')$$,
                 '23505', 'agent "taken" already exists in project 3', 'a duplicate (project_id, name)');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"description": "d"}]}')$$,
                 '22023', 'agent spec field "capabilities[0].name" is required', 'a capability without a name');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"name": "a", "input_schema": [true]}]}')$$,
                 '22023', 'invalid agent spec field "capabilities[0].input_schema": must be a JSON Schema (an object or a boolean), not array', 'a schema that is not an object or boolean');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "API", "image": "busybox", "limits": {"cpus": -1}, "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'invalid agent spec field "limits.cpus": must be a number from 0.01 to 64.0, not -1', 'a negative limit');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "API", "image": "busybox", "limits": {"timeout_seconds": 31536000}, "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'invalid agent spec field "limits.timeout_seconds": must be an integer from 1 to 86400, not 31536000', 'an absurd limit');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "RULE", "function": "public.tap_missing", "capabilities": [{"name": "a"}]}')$$,
                 '42883', 'invalid agent spec field "function": function public.tap_missing(jsonb) does not exist', 'a RULE function that does not exist');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "RULE", "function": "public.tap_text(text)", "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'invalid agent spec field "function": public.tap_text(text) returns text, but a RULE agent''s function must be (jsonb) returns jsonb', 'a RULE function with the wrong signature');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "no spaces please", "type": "API", "image": "busybox", "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'invalid agent spec field "name": "no spaces please": it may contain only letters, digits, ''_'', ''-'' and ''.''', 'a name outside the documented set');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "API", "image": "busybox", "secrets": ["not-a-var"], "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'invalid agent spec field "secrets[0]": "not-a-var" is not a valid secret name: it may contain only letters, digits and ''_''', 'a secret name outside the documented set');
SELECT throws_ok($$SELECT orchestration.register_agent(3, '{"name": "x", "type": "API", "image": "busybox", "capabilites": [], "capabilities": [{"name": "a"}]}')$$,
                 '22023', 'agent spec has an unknown field "capabilites"', 'a misspelt field');
SELECT throws_ok($$SELECT orchestration.update_agent((SELECT id FROM orchestration.agents WHERE name = 'taken'), '{"name": "taken", "type": "RULE", "function": "public.tap_echo", "capabilities": []}')$$,
                 '22023', 'agent spec field "capabilities" must list at least one capability', 'update_agent validates like register_agent');

SELECT is((SELECT agents FROM before), (SELECT md5(coalesce(string_agg(a::text, ',' ORDER BY a.id), '')) FROM orchestration.agents a), 'no agent row changed');
SELECT is((SELECT capabilities FROM before), (SELECT md5(coalesce(string_agg(c::text, ',' ORDER BY c.id), '')) FROM orchestration.agent_capabilities c), 'no capability row changed');

SELECT * FROM finish();
ROLLBACK;
