-- pg_orchestration 0.2.0: types and roles.
-- The install script is extension/*.sql concatenated in file-name order.

\echo Use "CREATE EXTENSION pg_orchestration" to load this file. \quit

-- Roles are cluster-wide and outlive the extension (DROP EXTENSION leaves them, as it
-- must: other databases may use them). Creating them only when missing lets the
-- extension be installed in several databases of one cluster.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orchestration_operator') THEN
    CREATE ROLE orchestration_operator NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orchestration_admin') THEN
    CREATE ROLE orchestration_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orchestration_approver') THEN
    CREATE ROLE orchestration_approver NOLOGIN;
  END IF;
END
$roles$;

-- An admin may do everything an operator may (start, cancel, read). Approving is kept
-- apart on purpose: four-eyes setups give it to different people.
GRANT orchestration_operator TO orchestration_admin;

COMMENT ON ROLE orchestration_admin IS
  'pg_orchestration: registers agents, defines workflows, manages secrets and project grants (in the projects it is granted)';
COMMENT ON ROLE orchestration_operator IS
  'pg_orchestration: starts, cancels and reads runs (in the projects it is granted)';
COMMENT ON ROLE orchestration_approver IS
  'pg_orchestration: approves or rejects nodes waiting for approval (in the projects it is granted)';

GRANT USAGE ON SCHEMA orchestration
  TO orchestration_admin, orchestration_operator, orchestration_approver;

CREATE TYPE orchestration.agent_type AS ENUM ('LLM', 'RULE', 'API', 'SCRIPT');
COMMENT ON TYPE orchestration.agent_type IS
  'How an agent runs: RULE agents are SQL functions run inside the database; LLM, API and SCRIPT agents run as sandboxed containers';

CREATE TYPE orchestration.risk_level AS ENUM ('AUTO', 'APPROVAL_REQUIRED');
COMMENT ON TYPE orchestration.risk_level IS
  'AUTO agents run as soon as their node is runnable; APPROVAL_REQUIRED agents wait for an approver first';

CREATE TYPE orchestration.run_status AS ENUM
  ('PENDING', 'RUNNING', 'SUCCESS', 'FAILED', 'WAITING_APPROVAL', 'SKIPPED', 'CANCELLED');
COMMENT ON TYPE orchestration.run_status IS
  'Status of a run, a node of a run, or an agent attempt. SKIPPED: a dependency failed or a condition was false';

CREATE TYPE orchestration.workflow_status AS ENUM ('ACTIVE', 'DRAFT', 'ARCHIVED');
COMMENT ON TYPE orchestration.workflow_status IS
  'Only ACTIVE workflows can be started; DRAFT ones are being written; ARCHIVED ones are kept for their history';

CREATE TYPE orchestration.approval_status AS ENUM ('PENDING', 'APPROVED', 'REJECTED');
COMMENT ON TYPE orchestration.approval_status IS
  'State of an approval request; an approval that expires becomes REJECTED with a note saying so';
