-- The demo: agents registered in project 1, a workflow that scans text for leaked
-- secrets, asks a human before it notifies, and reports; run end to end and shown in psql.
\set SHOW_CONTEXT never
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION pg_orchestration;

-- Roles as a deployment would have them: a backend that defines and starts workflows,
-- and a person who approves.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_backend') THEN CREATE ROLE demo_backend LOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_reviewer') THEN CREATE ROLE demo_reviewer LOGIN; END IF;
END $$;
GRANT orchestration_admin TO demo_backend;
GRANT orchestration_approver TO demo_reviewer;
SELECT orchestration.grant_project('demo_backend', 1), orchestration.grant_project('demo_reviewer', 1);

SET ROLE demo_backend;
\echo '== Registering the sample agents in project 1 (sandboxed containers)'
SELECT orchestration.register_agent(1, $${
  "name": "security-scanner", "type": "SCRIPT", "version": "1.0.0",
  "description": "Finds leaked secrets and risky patterns in text or files",
  "image": "orchestration/security-scanner:1.0",
  "limits": {"memory_mb": 64, "cpus": 0.5, "timeout_seconds": 60, "pids": 16},
  "capabilities": [{"name": "scan",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}, "files": {"type": "object"}}},
    "output_schema": {"type": "object", "required": ["findings"], "properties": {"findings": {"type": "array",
      "items": {"type": "object", "required": ["rule", "severity"], "properties": {"severity": {"enum": ["low", "medium", "high"]}}}}}}}]
}$$) AS scanner_agent;
SELECT orchestration.register_agent(1, $${
  "name": "notifier", "type": "SCRIPT", "version": "1.0.0", "risk_level": "APPROVAL_REQUIRED",
  "description": "Formats findings into a message (a human approves first)",
  "image": "orchestration/notifier:1.0", "secrets": ["SLACK_WEBHOOK"],
  "limits": {"memory_mb": 64, "timeout_seconds": 60, "pids": 16},
  "capabilities": [{"name": "notify", "input_schema": {"type": "object", "required": ["findings"]}}]
}$$) AS notifier_agent;
SELECT orchestration.set_secret(1, 'SLACK_WEBHOOK', 'https://hooks.example.invalid/demo');
SELECT id, name, type, risk_level, runs, capabilities FROM orchestration.list_agents(1);

\echo '== The sample workflow: scan -> (only if something was found) notify, after approval'
SELECT orchestration.create_workflow(1, $${
  "name": "leak-check", "description": "Scan pushed text and tell the team about leaks",
  "nodes": [
    {"id": "scan", "agent": "security-scanner", "action": "scan", "inputs": {"text": "{{ context.text }}"}},
    {"id": "notify", "agent": "notifier", "action": "notify", "depends_on": ["scan"],
     "when": "{{ nodes.scan.output.findings }}",
     "inputs": {"repo": "{{ context.repo }}", "channel": "#security", "findings": "{{ nodes.scan.output.findings }}"}}
  ]}$$) AS workflow_id;
SELECT node_key, level, depends_on FROM orchestration.workflow_levels(
  (SELECT id FROM orchestration.workflows WHERE name = 'leak-check'));

\echo '== Start a run, as the backend would'
SELECT orchestration.start_workflow(1, 'leak-check', $${"repo": "payments-api",
  "text": "config: AKIAABCDEFGHIJKLMNOP\npassword = hunter2"}$$) AS run_id \gset
SELECT orchestration.wait_for_run(:run_id, '30 seconds')->>'status' AS status;

\echo '== The run waits for a human'
SELECT approval_id, workflow, node_key, agent, started_by FROM orchestration.pending_approvals;
RESET ROLE;
SET ROLE demo_reviewer;
SELECT orchestration.approve(approval_id, 'real leak, tell them') FROM orchestration.pending_approvals WHERE run_id = :run_id;
RESET ROLE;
SET ROLE demo_backend;
SELECT orchestration.wait_for_run(:run_id, '30 seconds')->>'status' AS status;

\echo '== What happened'
SELECT run_id, workflow, status, nodes, succeeded, skipped, percent_done FROM orchestration.run_summary WHERE run_id = :run_id;
SELECT node_key, agent, status, attempt, exit_code, log_tail, error FROM orchestration.node_runs WHERE run_id = :run_id ORDER BY level;
SELECT output->>'message' AS message FROM orchestration.workflow_run_nodes WHERE run_id = :run_id AND node_key = 'notify';
SELECT type, subject FROM orchestration.events WHERE run_id = :run_id ORDER BY id;

\echo '== Clean text: the notify node is skipped by its condition, the run still succeeds'
SELECT orchestration.start_workflow(1, 'leak-check', '{"repo": "docs", "text": "nothing to see"}') AS clean_run \gset
SELECT r->>'status' AS status, r->'nodes'->1->>'status' AS notify, r->'nodes'->1->>'skip_reason' AS why
FROM orchestration.wait_for_run(:clean_run, '30 seconds') r;

\echo '== Secrets show their names and users, never their values'
SELECT name, used_by FROM orchestration.list_secrets(1);

\echo '== A bad spec is refused with the field named, and nothing is written'
\set ON_ERROR_STOP 0
SELECT orchestration.register_agent(1, '{"name": "broken", "type": "SCRIPT", "image": "busybox", "limits": {"memory_mb": -1}, "capabilities": [{"name": "x"}]}');
\echo
