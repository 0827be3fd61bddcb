-- The agent registry: register, read, list, update and delete agents.
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 600000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE FUNCTION public.triage(input jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jsonb_build_object('priority', coalesce(input->>'severity', 'low')) $$;

-- A RULE agent: a SQL function (jsonb) returns jsonb, run inside the database.
SELECT orchestration.register_agent(1, $${
  "name": "triage", "type": "RULE", "version": "1.0.0",
  "description": "Decides how urgent a finding is",
  "function": "public.triage",
  "capabilities": [{"name": "decide",
                    "input_schema": {"type": "object"},
                    "output_schema": {"type": "object", "required": ["priority"]}}]
}$$) AS triage_id \gset

-- A container agent, with defaults for everything left out.
SELECT orchestration.register_agent(1, $${
  "name": "security-scanner", "type": "SCRIPT", "version": "0.3.0",
  "image": "orchestration/security-scanner:latest",
  "command": ["--format", "json"], "entry_path": "/agent/scan",
  "env": {"LOG_LEVEL": "info"}, "secrets": ["GITHUB_TOKEN"],
  "limits": {"memory_mb": 128, "cpus": 0.5, "timeout_seconds": 60, "pids": 32},
  "risk_level": "AUTO",
  "capabilities": [{"name": "scan", "description": "Scan text for leaked secrets"},
                   {"name": "scan-dir"}]
}$$) AS scanner_id \gset

SELECT orchestration.register_agent(1, $${
  "name": "notifier", "type": "LLM", "image": "orchestration/notifier",
  "risk_level": "APPROVAL_REQUIRED", "capabilities": [{"name": "notify"}]
}$$) AS notifier_id \gset

-- Another project may use the same names.
SELECT orchestration.register_agent(2, '{"name": "triage", "type": "RULE", "function": "public.triage", "capabilities": [{"name": "decide"}]}') AS other_project_id \gset

-- Ordered by name, with capabilities.
SELECT id, name, type, version, risk_level, runs, capabilities, description
FROM orchestration.list_agents(1);
SELECT name FROM orchestration.list_agents(2);
SELECT count(*) AS agents_of_unused_project FROM orchestration.list_agents(99);

-- get_agent returns the spec as registered, with defaults filled in.
SELECT jsonb_pretty(orchestration.get_agent(:scanner_id) - '{id,registered_at,updated_at}'::text[]);
SELECT jsonb_pretty(orchestration.get_agent(:triage_id) - '{id,registered_at,updated_at}'::text[]);
SELECT orchestration.get_agent(:notifier_id)->>'risk_level' AS notifier_risk,
       orchestration.get_agent(:notifier_id)->'limits' AS default_limits;
SELECT orchestration.get_agent(12345);

-- normalize_agent_spec validates without writing anything.
SELECT jsonb_pretty(orchestration.normalize_agent_spec('{"name": "x", "type": "API", "image": "busybox", "capabilities": [{"name": "call"}]}'));

-- update_agent replaces the spec; get_agent() || changes edits one field.
SELECT orchestration.update_agent(:scanner_id, orchestration.get_agent(:scanner_id) || '{"version": "0.4.0"}')->>'version' AS new_version;
SELECT orchestration.update_agent(:scanner_id, orchestration.get_agent(:scanner_id)
         || '{"capabilities": [{"name": "scan", "description": "Scan text, better"}]}')->'capabilities' AS capabilities;
-- The capability row was updated in place, not replaced; scan-dir is gone.
SELECT name, description FROM orchestration.agent_capabilities WHERE agent_id = :scanner_id ORDER BY name;
-- Renaming is an update too, and collides like registering would.
SELECT orchestration.update_agent(:notifier_id, orchestration.get_agent(:notifier_id) || '{"name": "triage"}');
SELECT orchestration.update_agent(:notifier_id, orchestration.get_agent(:notifier_id) || '{"name": "pager"}')->>'name' AS renamed;
-- Switching an agent from a container to a RULE function.
SELECT orchestration.update_agent(:notifier_id, '{"name": "pager", "type": "RULE", "function": "public.triage", "capabilities": [{"name": "notify"}]}')->>'function' AS now_runs;
SELECT name, type, image, rule_function FROM orchestration.agents WHERE id = :notifier_id;

-- delete_agent removes the agent and its capabilities.
SELECT orchestration.delete_agent(:notifier_id);
SELECT count(*) AS capabilities_left FROM orchestration.agent_capabilities WHERE agent_id = :notifier_id;
SELECT orchestration.delete_agent(:notifier_id);

-- A workflow still using an agent (or one of its capabilities) keeps it alive.
SELECT orchestration.create_workflow(1, '{"name": "nightly-scan", "nodes": [{"id": "scan", "agent": "security-scanner", "action": "scan"}]}') AS nightly_id \gset
SELECT orchestration.delete_agent(:scanner_id);
SELECT orchestration.update_agent(:scanner_id, orchestration.get_agent(:scanner_id) || '{"capabilities": [{"name": "other"}]}');
SELECT name FROM orchestration.agent_capabilities WHERE agent_id = :scanner_id;
SELECT orchestration.update_workflow(:nightly_id, '{"name": "nightly-scan", "nodes": [{"id": "scan", "agent": "triage", "action": "decide"}]}')->'nodes'->0->>'agent' AS now_uses;
SELECT orchestration.delete_agent(:scanner_id);
SELECT name FROM orchestration.list_agents(1);
SELECT orchestration.delete_agent(:other_project_id);
