-- Approvals: an APPROVAL_REQUIRED agent (or a node with approval_required) waits for an
-- approver; approve lets it run, reject fails it; answers are recorded; approvals can
-- expire; with four-eyes the role that started a run cannot approve it.
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 400000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE FUNCTION public.appr_echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT orchestration.register_agent(41, '{"name": "echo", "type": "RULE", "function": "public.appr_echo", "capabilities": [{"name": "say"}]}') > 0 AS registered;
SELECT orchestration.register_agent(41, '{"name": "publisher", "type": "RULE", "function": "public.appr_echo", "risk_level": "APPROVAL_REQUIRED", "capabilities": [{"name": "publish"}]}') > 0 AS registered;
SELECT orchestration.create_workflow(41, $${"name": "release", "nodes": [
  {"id": "build", "agent": "echo", "action": "say", "inputs": {"version": "{{ context.version }}"}},
  {"id": "publish", "agent": "publisher", "action": "publish", "depends_on": ["build"], "inputs": {"v": "{{ nodes.build.output.version }}"}},
  {"id": "announce", "agent": "echo", "action": "say", "depends_on": ["publish"], "approval_required": true}]}$$) > 0 AS created;

CREATE ROLE appr_operator;
CREATE ROLE appr_approver;
CREATE ROLE appr_outsider;
CREATE ROLE appr_both;
GRANT orchestration_operator TO appr_operator, appr_both;
GRANT orchestration_approver TO appr_approver, appr_outsider, appr_both;
SELECT orchestration.grant_project(r, 41) FROM unnest(ARRAY['appr_operator', 'appr_approver', 'appr_both']) r;
SELECT orchestration.grant_project('appr_outsider', 42);

-- The run stops before "publish" (its agent is APPROVAL_REQUIRED).
SET ROLE appr_operator;
SELECT orchestration.start_workflow(41, 'release', '{"version": "1.4.0"}') AS run_id \gset
RESET ROLE;
SELECT r->>'status' AS status, r->'nodes'->0->>'status' AS build, r->'nodes'->1->>'status' AS publish
FROM orchestration.wait_for_run(:run_id, '30 seconds') r;
SELECT approval_id AS approval_id, workflow, node_key, agent, started_by, expires_at > requested_at AS expires
FROM orchestration.pending_approvals WHERE run_id = :run_id \gset
SELECT workflow, node_key, agent, started_by, input FROM orchestration.pending_approvals WHERE run_id = :run_id;
SELECT status, waiting FROM orchestration.run_summary WHERE run_id = :run_id;

-- Only approvers answer, and only in their projects.
SET ROLE appr_operator;
SELECT orchestration.approve(:approval_id);
SET ROLE appr_outsider;
SELECT orchestration.approve(:approval_id) IS NULL AS answered;
SET ROLE appr_approver;
SELECT orchestration.approve(:approval_id, 'release notes checked');
RESET ROLE;
SELECT status, responded_by, notes, responded_at IS NOT NULL AS answered_at
FROM orchestration.workflow_approvals WHERE id = :approval_id;
-- "announce" needs its own approval (approval_required on the node).
SELECT r->>'status' AS status, r->'nodes'->1->>'status' AS publish, r->'nodes'->2->>'status' AS announce
FROM orchestration.wait_for_run(:run_id, '30 seconds') r;
SET ROLE appr_approver;
SELECT orchestration.approve(approval_id) FROM orchestration.pending_approvals WHERE run_id = :run_id;
-- Answering twice is an error.
SELECT orchestration.approve(:approval_id);
SELECT orchestration.reject(:approval_id);
RESET ROLE;
SELECT orchestration.wait_for_run(:run_id, '30 seconds')->>'status' AS status;
SELECT type FROM orchestration.events WHERE run_id = :run_id AND type LIKE '%approval%' ORDER BY id;

-- Rejection fails the node (no retries) and the run; what depends on it is skipped.
SELECT orchestration.start_workflow(41, 'release', '{"version": "1.5.0"}') AS run2 \gset
SELECT orchestration.wait_for_run(:run2, '30 seconds')->>'status' AS status;
SET ROLE appr_approver;
SELECT orchestration.reject(approval_id, 'not on a Friday') FROM orchestration.pending_approvals WHERE run_id = :run2;
RESET ROLE;
SELECT r->>'status' AS status, r->>'error' AS error FROM orchestration.wait_for_run(:run2, '30 seconds') r;
SELECT node_key, status, error FROM orchestration.node_runs WHERE run_id = :run2 ORDER BY level;

-- A node whose condition is false is skipped without asking anyone.
SELECT orchestration.create_workflow(41, $${"name": "maybe-release", "nodes": [
  {"id": "build", "agent": "echo", "action": "say", "inputs": {"ship": "{{ context.ship }}"}},
  {"id": "publish", "agent": "publisher", "action": "publish", "depends_on": ["build"], "when": "{{ nodes.build.output.ship }}"}]}$$) > 0 AS created;
SELECT orchestration.start_workflow(41, 'maybe-release', '{"ship": false}') AS run_skip \gset
SELECT r->>'status' AS status, r->'nodes'->1->>'status' AS publish FROM orchestration.wait_for_run(:run_skip, '30 seconds') r;
SELECT count(*) AS approvals_asked FROM orchestration.workflow_approvals WHERE run_id = :run_skip;

-- Four eyes: the person (the login) that started the run may not answer its approvals,
-- neither as itself nor through a group role it switches to. SET SESSION AUTHORIZATION
-- stands for logging in as another person.
CREATE ROLE appr_group;
GRANT orchestration_approver TO appr_group;
GRANT appr_group TO appr_both;
SELECT orchestration.grant_project('appr_group', 41);
ALTER SYSTEM SET orchestration.approval_four_eyes = on;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SET SESSION AUTHORIZATION appr_both;
SELECT orchestration.start_workflow(41, 'release', '{"version": "1.6.0"}') AS run3 \gset
SELECT orchestration.wait_for_run(:run3, '30 seconds')->>'status' AS status;
SELECT orchestration.approve(approval_id) FROM orchestration.pending_approvals WHERE run_id = :run3;
SET ROLE appr_group;
SELECT orchestration.approve(approval_id) FROM orchestration.pending_approvals WHERE run_id = :run3;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION appr_approver;
SELECT orchestration.approve(approval_id) FROM orchestration.pending_approvals WHERE run_id = :run3;
RESET SESSION AUTHORIZATION;
SELECT status, responded_by FROM orchestration.workflow_approvals WHERE run_id = :run3 AND node_key = 'publish';
SELECT orchestration.cancel_run(:run3, 'enough');
ALTER SYSTEM RESET orchestration.approval_four_eyes;

-- The deadline holds where the answer is given, even while the scheduler has not yet
-- expired the approval (here: the past deadline is not committed, so it cannot see it).
SELECT orchestration.start_workflow(41, 'release', '{"version": "1.6.5"}') AS run35 \gset
SELECT orchestration.wait_for_run(:run35, '30 seconds')->>'status' AS status;
BEGIN;
UPDATE orchestration.workflow_approvals SET expires_at = clock_timestamp() - interval '1 second'
WHERE run_id = :run35;
DO $$
BEGIN
  PERFORM orchestration.approve(a.id) FROM orchestration.workflow_approvals a
  WHERE a.run_id = (SELECT max(id) FROM orchestration.workflow_runs WHERE project_id = 41);
EXCEPTION WHEN object_not_in_prerequisite_state THEN
  RAISE NOTICE '%', regexp_replace(SQLERRM, 'approval \d+ expired at [^;]*;', 'approval N expired at <time>;');
END $$;
ROLLBACK;
SELECT orchestration.cancel_run(:run35, 'enough');

-- Expiry: an approval not answered within orchestration.approval_timeout is rejected.
ALTER SYSTEM SET orchestration.approval_timeout = '1s';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SELECT orchestration.start_workflow(41, 'release', '{"version": "1.7.0"}') AS run4 \gset
SELECT orchestration.wait_for_run(:run4, '30 seconds')->>'status' AS waiting;
DO $$
DECLARE run_status text;
BEGIN
  FOR i IN 1..300 LOOP
    SELECT status INTO run_status FROM orchestration.workflow_runs
    WHERE id = (SELECT max(id) FROM orchestration.workflow_runs WHERE project_id = 41);
    EXIT WHEN run_status <> 'WAITING_APPROVAL';
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT a.status, a.responded_by, a.notes FROM orchestration.workflow_approvals a WHERE a.run_id = :run4;
SELECT r->>'status' AS status, regexp_replace(r->>'error', 'approval \d+', 'approval N') AS error
FROM orchestration.wait_for_run(:run4, '1 second') r;
ALTER SYSTEM RESET orchestration.approval_timeout;
SELECT pg_reload_conf();

SELECT orchestration.revoke_project(r, 41) FROM unnest(ARRAY['appr_operator', 'appr_approver', 'appr_both']) r;
SELECT orchestration.revoke_project('appr_outsider', 42);
SELECT orchestration.revoke_project('appr_group', 41);
DROP ROLE appr_operator, appr_approver, appr_outsider, appr_both, appr_group;
