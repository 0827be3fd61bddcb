-- The demo: the sample agents of the plan, registered in project 1, shown in psql.
\set SHOW_CONTEXT never
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION pg_orchestration;

-- A backend role for project 1, as the Python backend would use it.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_backend') THEN
    CREATE ROLE demo_backend LOGIN;
  END IF;
END $$;
GRANT orchestration_admin TO demo_backend;
SELECT orchestration.grant_project('demo_backend', 1);
SET ROLE demo_backend;

\echo '== Registering the sample agents in project 1'
SELECT orchestration.register_agent(1, $${
  "name": "security-scanner", "type": "SCRIPT", "version": "1.0.0",
  "description": "Scans text or a directory for leaked secrets and risky patterns",
  "image": "orchestration/security-scanner:latest", "entry_path": "/agent/scan",
  "limits": {"memory_mb": 128, "cpus": 0.5, "timeout_seconds": 60, "pids": 32},
  "capabilities": [{
    "name": "scan",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    "output_schema": {"type": "object", "required": ["findings"]}
  }]
}$$) AS scanner_id;

SELECT orchestration.register_agent(1, $${
  "name": "notifier", "type": "SCRIPT", "version": "1.0.0",
  "description": "Formats findings into a message",
  "image": "orchestration/notifier:latest", "risk_level": "APPROVAL_REQUIRED",
  "secrets": ["SLACK_WEBHOOK"],
  "capabilities": [{"name": "notify", "input_schema": {"type": "object", "required": ["findings"]}}]
}$$) AS notifier_id;

SELECT orchestration.set_secret(1, 'SLACK_WEBHOOK', 'https://hooks.example.invalid/demo');

\echo '== The registry, as an operator sees it'
SELECT id, name, type, version, risk_level, runs, capabilities
FROM orchestration.list_agents(1);

\echo '== One agent, as the backend gets it'
SELECT jsonb_pretty(orchestration.get_agent(
  (SELECT id FROM orchestration.agents WHERE name = 'notifier')) - '{registered_at,updated_at}'::text[]) AS notifier;

\echo '== Secrets show their names and users, never their values'
SELECT name, used_by FROM orchestration.list_secrets(1);

\echo '== A bad spec is refused with the field named, and nothing is written'
\set ON_ERROR_STOP 0
SELECT orchestration.register_agent(1, '{"name": "broken", "type": "SCRIPT", "image": "busybox", "limits": {"memory_mb": -1}, "capabilities": [{"name": "x"}]}');
\echo
