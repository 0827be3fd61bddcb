-- Bad input to the registry: each call fails with a message naming the field, and
-- nothing is written (checked at the end against a snapshot taken first).
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 700000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE FUNCTION public.echo_rule(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
CREATE FUNCTION public.wrong_argument(input text) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION public.wrong_result(input jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
CREATE FUNCTION public.many_results(input jsonb) RETURNS SETOF jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT orchestration.register_agent(1, '{"name": "existing", "type": "RULE", "function": "public.echo_rule", "capabilities": [{"name": "decide"}]}') AS existing_id \gset

CREATE TEMP TABLE registry_before AS
SELECT (SELECT count(*) FROM orchestration.agents) AS agents,
       (SELECT count(*) FROM orchestration.agent_capabilities) AS capabilities,
       (SELECT md5(string_agg(a::text, ',' ORDER BY a.id)) FROM orchestration.agents a) AS digest;

-- Missing fields.
SELECT orchestration.register_agent(1, '{"type": "RULE", "function": "public.echo_rule", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "function": "public.echo_rule", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "SCRIPT", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "public.echo_rule"}');
SELECT orchestration.register_agent(1, NULL);
-- Mistyped fields.
SELECT orchestration.register_agent(1, '{"name": 7, "type": "RULE", "function": "public.echo_rule", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "allow_network": "yes", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "command": "run --fast", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "env": {"LEVEL": 3}, "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "limits": [256], "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "secrets": "TOKEN", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "capabilities": {"name": "a"}}');
SELECT orchestration.register_agent(1, '["not", "an", "object"]');
-- Unknown enum values and unknown fields.
SELECT orchestration.register_agent(1, '{"name": "x", "type": "PYTHON", "image": "busybox", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "risk_level": "HIGH", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "imgae": "busybox", "image": "busybox", "capabilities": [{"name": "a"}]}');
-- A typo where a required field belongs: the error names the required field, the hint the typo.
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "imgae": "busybox", "capabilities": [{"name": "a"}]}');
-- Fields that do not apply to the agent's type.
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "public.echo_rule", "image": "busybox", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "SCRIPT", "image": "busybox", "function": "public.echo_rule", "capabilities": [{"name": "a"}]}');
-- A duplicate (project_id, name).
SELECT orchestration.register_agent(1, '{"name": "existing", "type": "RULE", "function": "public.echo_rule", "capabilities": [{"name": "decide"}]}');
-- Capabilities.
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "capabilities": []}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"description": "nameless"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"name": "a"}, {"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"name": "a", "input_schema": "object"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"name": "a", "output_schema": 42}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"name": "a", "output_schema": null}]}') > 0 AS null_schema_means_any;
SELECT orchestration.delete_agent(id) FROM orchestration.agents WHERE name = 'x';
-- Negative and absurd limits.
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "limits": {"memory_mb": -5}, "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "limits": {"memory_mb": 1e400}, "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "limits": {"cpus": 1000}, "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "limits": {"timeout_seconds": 0}, "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "limits": {"pids": 1000000000}, "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "limits": {"swap_mb": 1}, "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "public.echo_rule", "limits": {"memory_mb": 64}, "capabilities": [{"name": "a"}]}');
-- RULE functions that do not exist or have the wrong signature.
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "public.no_such_function", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "triage", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "public.wrong_argument", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "public.wrong_argument(text)", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "public.wrong_result", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "public.many_results", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "RULE", "function": "public.\"unterminated", "capabilities": [{"name": "a"}]}');
-- Names outside the documented set.
SELECT orchestration.register_agent(1, '{"name": "my agent", "type": "API", "image": "busybox", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"name": "scan>all"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "env": {"LOG-LEVEL": "x"}, "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "busybox", "secrets": ["api.key"], "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(1, '{"name": "x", "type": "API", "image": "bad image!", "capabilities": [{"name": "a"}]}');
-- Bad project ids.
SELECT orchestration.register_agent(0, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"name": "a"}]}');
SELECT orchestration.register_agent(NULL, '{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"name": "a"}]}');
-- update_agent and delete_agent check the same things.
SELECT orchestration.update_agent(:existing_id, orchestration.get_agent(:existing_id) || '{"limits": {"timeout_seconds": -1}}');
SELECT orchestration.update_agent(:existing_id, orchestration.get_agent(:existing_id) || '{"type": "SQL"}');
SELECT orchestration.update_agent(:existing_id, NULL);
SELECT orchestration.update_agent(999, '{}');
SELECT orchestration.delete_agent(999);

-- Nothing above wrote anything.
SELECT b.agents = (SELECT count(*) FROM orchestration.agents) AS same_agents,
       b.capabilities = (SELECT count(*) FROM orchestration.agent_capabilities) AS same_capabilities,
       b.digest = (SELECT md5(string_agg(a::text, ',' ORDER BY a.id)) FROM orchestration.agents a) AS same_rows
FROM registry_before b;

SELECT orchestration.delete_agent(:existing_id);
DROP FUNCTION public.echo_rule(jsonb), public.wrong_argument(text), public.wrong_result(jsonb),
              public.many_results(jsonb);
