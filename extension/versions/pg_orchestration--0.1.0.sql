-- pg_orchestration 0.1.0: types and roles.
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
-- The data model. Every table that belongs to a project carries project_id, which
-- row-level security (20_tenancy.sql) filters on. Ids are bigint identities: easy to type
-- in psql. Writes go through the API functions only; roles get SELECT, and only on rows
-- of their projects.

CREATE TABLE orchestration.agents (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id       integer NOT NULL CHECK (project_id > 0),
  name             text NOT NULL,
  type             orchestration.agent_type NOT NULL,
  description      text,
  version          text NOT NULL,
  risk_level       orchestration.risk_level NOT NULL DEFAULT 'AUTO',
  image            text,
  command          text[] NOT NULL DEFAULT '{}',
  entry_path       text,
  env              jsonb NOT NULL DEFAULT '{}',
  secrets          text[] NOT NULL DEFAULT '{}',
  memory_mb        integer,
  cpus             numeric,
  timeout_seconds  integer NOT NULL,
  pids_limit       integer,
  allow_network    boolean NOT NULL DEFAULT false,
  rule_function    text,
  registered_by    name NOT NULL,
  registered_at    timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name),
  CONSTRAINT agents_rule_has_function CHECK ((type = 'RULE') = (rule_function IS NOT NULL)),
  CONSTRAINT agents_container_has_image CHECK (type = 'RULE' OR image IS NOT NULL)
);
CREATE INDEX ON orchestration.agents (project_id, type);
COMMENT ON TABLE orchestration.agents IS
  'The agent registry: what each agent is and how it runs (container image and sandbox limits, or a SQL function for RULE agents). Write with register_agent/update_agent/delete_agent';
COMMENT ON COLUMN orchestration.agents.secrets IS
  'Names of project secrets injected as environment variables into the container; the values stay in orchestration.secrets';
COMMENT ON COLUMN orchestration.agents.rule_function IS
  'RULE agents: the function (jsonb) returns jsonb that computes the output, as regprocedure text';
COMMENT ON COLUMN orchestration.agents.registered_by IS
  'The role that registered the agent; a RULE agent''s function runs with this role''s privileges';

CREATE TABLE orchestration.agent_capabilities (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agent_id       bigint NOT NULL REFERENCES orchestration.agents ON DELETE CASCADE,
  project_id     integer NOT NULL,
  name           text NOT NULL,
  description    text,
  input_schema   jsonb NOT NULL DEFAULT 'true',
  output_schema  jsonb NOT NULL DEFAULT 'true',
  UNIQUE (agent_id, name)
);
COMMENT ON TABLE orchestration.agent_capabilities IS
  'What an agent can do: each capability is an action a workflow node may call, with JSON Schemas for its input and output';

CREATE TABLE orchestration.workflows (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id   integer NOT NULL CHECK (project_id > 0),
  name         text NOT NULL,
  description  text,
  trigger      jsonb NOT NULL DEFAULT '{"type": "manual"}',
  status       orchestration.workflow_status NOT NULL DEFAULT 'ACTIVE',
  version      integer NOT NULL DEFAULT 1,
  created_by   name NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);
CREATE INDEX ON orchestration.workflows (project_id, status);
COMMENT ON TABLE orchestration.workflows IS
  'Workflow definitions: a DAG of nodes (workflow_nodes) and how runs are triggered (manual, table, nats)';
COMMENT ON COLUMN orchestration.workflows.version IS
  'Incremented by every update; a run records the version it started with';

CREATE TABLE orchestration.workflow_nodes (
  id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workflow_id            bigint NOT NULL REFERENCES orchestration.workflows ON DELETE CASCADE,
  project_id             integer NOT NULL,
  node_key               text NOT NULL,
  agent_id               bigint NOT NULL,
  action                 text NOT NULL,
  inputs                 jsonb NOT NULL DEFAULT '{}',
  depends_on             text[] NOT NULL DEFAULT '{}',
  approval_required      boolean NOT NULL DEFAULT false,
  retries                integer NOT NULL DEFAULT 0 CHECK (retries >= 0),
  retry_backoff_seconds  numeric NOT NULL DEFAULT 1 CHECK (retry_backoff_seconds >= 0),
  timeout_seconds        integer CHECK (timeout_seconds > 0),
  condition              jsonb,
  run_if_skipped         boolean NOT NULL DEFAULT false,
  refs                   text[] NOT NULL DEFAULT '{}',
  dependents             text[] NOT NULL DEFAULT '{}',
  level                  integer NOT NULL DEFAULT 0,
  UNIQUE (workflow_id, node_key),
  -- A node calls a capability that exists; the registry refuses to remove one in use.
  FOREIGN KEY (agent_id, action) REFERENCES orchestration.agent_capabilities (agent_id, name)
    ON UPDATE CASCADE
);
CREATE INDEX ON orchestration.workflow_nodes (agent_id);
COMMENT ON TABLE orchestration.workflow_nodes IS
  'The nodes of a workflow: which agent capability each runs, its templated inputs and the nodes it depends on';
COMMENT ON COLUMN orchestration.workflow_nodes.node_key IS
  'The node''s id within its workflow, as used in depends_on and in {{ nodes.<id>.output }} templates';
COMMENT ON COLUMN orchestration.workflow_nodes.condition IS
  'The node''s "when" condition (a boolean or a condition string); false makes the node SKIPPED';
COMMENT ON COLUMN orchestration.workflow_nodes.run_if_skipped IS
  'Whether the node runs when a dependency was SKIPPED (by its condition); by default it is skipped too';
COMMENT ON COLUMN orchestration.workflow_nodes.refs IS
  'The nodes whose output the inputs and condition reference; each is upstream of this node';
COMMENT ON COLUMN orchestration.workflow_nodes.dependents IS
  'The nodes that depend on this one (the reverse of depends_on), so finishing a node touches only its dependents';
COMMENT ON COLUMN orchestration.workflow_nodes.level IS
  'Topological depth: 0 for nodes without dependencies, else one more than the deepest dependency (see workflow_levels)';

CREATE TABLE orchestration.workflow_runs (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workflow_id       bigint NOT NULL REFERENCES orchestration.workflows,
  project_id        integer NOT NULL,
  workflow_version  integer NOT NULL,
  trigger           text NOT NULL,
  context           jsonb NOT NULL DEFAULT '{}',
  status            orchestration.run_status NOT NULL DEFAULT 'PENDING',
  traceparent       text,
  started_by        name NOT NULL,
  error             text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz
);
CREATE INDEX ON orchestration.workflow_runs (workflow_id, status);
CREATE INDEX ON orchestration.workflow_runs (created_at);
-- The scheduler looks only at live runs; this index stays small however much history
-- the table holds.
CREATE INDEX workflow_runs_live ON orchestration.workflow_runs (id)
  WHERE status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL');
COMMENT ON TABLE orchestration.workflow_runs IS
  'One row per run of a workflow: what started it, its context, its status and timings';

CREATE TABLE orchestration.workflow_run_nodes (
  id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id                 bigint NOT NULL REFERENCES orchestration.workflow_runs ON DELETE CASCADE,
  project_id             integer NOT NULL,
  node_key               text NOT NULL,
  agent_id               bigint REFERENCES orchestration.agents ON DELETE SET NULL,
  action                 text NOT NULL,
  inputs                 jsonb NOT NULL,
  depends_on             text[] NOT NULL,
  approval_required      boolean NOT NULL,
  retries                integer NOT NULL,
  retry_backoff_seconds  numeric NOT NULL,
  timeout_seconds        integer,
  condition              jsonb,
  run_if_skipped         boolean NOT NULL,
  refs                   text[] NOT NULL,
  dependents             text[] NOT NULL,
  level                  integer NOT NULL,
  pending_deps           integer NOT NULL,
  status                 orchestration.run_status NOT NULL DEFAULT 'PENDING',
  skip_reason            text,
  attempt                integer NOT NULL DEFAULT 0,
  resolved_input         jsonb,
  output                 jsonb,
  error                  text,
  container_name         text,
  attempt_traceparent    text,
  next_attempt_at        timestamptz,
  started_at             timestamptz,
  finished_at            timestamptz,
  UNIQUE (run_id, node_key)
);
-- The scheduler's queue: runnable nodes in dispatch order. Only nodes that can run now
-- are in it, so finding work costs the same however many finished runs the table holds.
CREATE INDEX workflow_run_nodes_runnable ON orchestration.workflow_run_nodes (level, id)
  WHERE status = 'PENDING' AND pending_deps = 0;
-- A run's unfinished nodes; with pending_deps, "has this run something runnable" is one
-- index probe however many nodes wait in the run.
CREATE INDEX workflow_run_nodes_live ON orchestration.workflow_run_nodes (run_id, status, pending_deps)
  WHERE status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL');
-- The running containers, counted against the concurrency limits at every claim: a small
-- index however many nodes wait.
CREATE INDEX workflow_run_nodes_running ON orchestration.workflow_run_nodes (project_id)
  WHERE status = 'RUNNING';
COMMENT ON TABLE orchestration.workflow_run_nodes IS
  'Per-run node state: a copy of each node''s definition taken when the run started (so later workflow edits do not change it), its status, attempt, resolved input, output and error';
COMMENT ON COLUMN orchestration.workflow_run_nodes.pending_deps IS
  'How many dependencies have not finished yet; the node is runnable when it is PENDING and this is 0';
COMMENT ON COLUMN orchestration.workflow_run_nodes.attempt_traceparent IS
  'The W3C traceparent of the running container''s attempt (its TRACEPARENT), kept so that its span keeps its id after a scheduler restart';
COMMENT ON COLUMN orchestration.workflow_run_nodes.skip_reason IS
  'Why a SKIPPED node did not run: its condition was false, a dependency was skipped, or the run failed';

CREATE TABLE orchestration.agent_runs (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id       integer NOT NULL,
  agent_id         bigint REFERENCES orchestration.agents ON DELETE SET NULL,
  agent_name       text NOT NULL,
  workflow_run_id  bigint REFERENCES orchestration.workflow_runs ON DELETE CASCADE,
  run_node_id      bigint REFERENCES orchestration.workflow_run_nodes ON DELETE CASCADE,
  attempt          integer NOT NULL,
  input_json       jsonb NOT NULL,
  output_json      jsonb,
  status           orchestration.run_status NOT NULL,
  error            text,
  exit_code        integer,
  log_tail         text,
  container_id     text,
  traceparent      text,
  scheduler_round  bigint,
  started_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  duration_ms      integer
);
CREATE INDEX ON orchestration.agent_runs (agent_id, status);
CREATE INDEX ON orchestration.agent_runs (workflow_run_id);
CREATE INDEX ON orchestration.agent_runs (run_node_id);
COMMENT ON TABLE orchestration.agent_runs IS
  'History of every attempt of every agent: input, output, status, error, exit code, log tail and timings';
COMMENT ON COLUMN orchestration.agent_runs.traceparent IS
  'The attempt''s W3C traceparent: a span of its own in its run''s trace (a container got it as TRACEPARENT)';

CREATE TABLE orchestration.workflow_approvals (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id       integer NOT NULL,
  workflow_run_id  bigint NOT NULL REFERENCES orchestration.workflow_runs ON DELETE CASCADE,
  run_node_id      bigint NOT NULL REFERENCES orchestration.workflow_run_nodes ON DELETE CASCADE,
  node_key         text NOT NULL,
  status           orchestration.approval_status NOT NULL DEFAULT 'PENDING',
  requested_at     timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz,
  responded_at     timestamptz,
  responded_by     name,
  notes            text
);
CREATE INDEX ON orchestration.workflow_approvals (workflow_run_id, status);
CREATE INDEX workflow_approvals_expiry ON orchestration.workflow_approvals (expires_at)
  WHERE status = 'PENDING';
CREATE UNIQUE INDEX workflow_approvals_one_pending ON orchestration.workflow_approvals (run_node_id)
  WHERE status = 'PENDING';
COMMENT ON TABLE orchestration.workflow_approvals IS
  'Approval requests for nodes whose agent or definition requires one: who answered, when, and with what notes';

CREATE TABLE orchestration.events (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id    integer NOT NULL,
  type          text NOT NULL,
  subject       text NOT NULL,
  run_id        bigint,
  payload       jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  published_at  timestamptz
);
CREATE INDEX events_unpublished ON orchestration.events (id) WHERE published_at IS NULL;
CREATE INDEX ON orchestration.events (created_at);
-- The relay prunes published events by age (orchestration.event_retention).
CREATE INDEX events_published ON orchestration.events (published_at) WHERE published_at IS NOT NULL;
COMMENT ON TABLE orchestration.events IS
  'Transactional outbox: one CloudEvents document per state change, written in the same transaction; the relay publishes them to NATS in id order and sets published_at';

-- Spans waiting for the relay to send them to orchestration.otlp_endpoint; written only
-- while it is set (triggers in 89_traces.sql).
CREATE TABLE orchestration.span_queue (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  span        jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE orchestration.span_queue IS
  'Spans (OTLP JSON) of finished runs and node attempts, kept until the relay has sent them to orchestration.otlp_endpoint, or at most orchestration.event_retention; filled only while otlp_endpoint is set';

CREATE TABLE orchestration.secrets (
  project_id  integer NOT NULL CHECK (project_id > 0),
  name        text NOT NULL,
  value       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, name)
);
COMMENT ON TABLE orchestration.secrets IS
  'Secret values, injected into agent containers as environment variables. No role but the extension owner can read this table; set_secret, delete_secret and list_secrets are the only way in';
-- Tenancy: a role may use a project only if it has been granted it (directly or through
-- a role it belongs to). Reads are filtered by row-level security; writes go through
-- SECURITY DEFINER functions, which check the same grants with authorize().

CREATE TABLE orchestration.project_grants (
  role        regrole NOT NULL,
  project_id  integer NOT NULL CHECK (project_id > 0),
  granted_by  name NOT NULL,
  granted_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (role, project_id)
);
CREATE INDEX ON orchestration.project_grants (project_id);
COMMENT ON TABLE orchestration.project_grants IS
  'Which roles may use which projects. A role sees its own grants (and those of roles it belongs to). Write with grant_project/revoke_project';

ALTER TABLE orchestration.project_grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_grants ON orchestration.project_grants
  USING (pg_catalog.pg_has_role(current_user, role, 'USAGE'));

CREATE FUNCTION orchestration.visible_projects() RETURNS SETOF integer
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT DISTINCT project_id FROM orchestration.project_grants $$;
COMMENT ON FUNCTION orchestration.visible_projects() IS
  'The projects the current role may use (its own grants and those of roles it belongs to); the row-level security policies filter on it';

-- The same policy on every project-owned table. Only SELECT is granted, so it filters
-- reads; it is FOR ALL so that a write granted by mistake would still be confined.
DO $policies$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['agents', 'agent_capabilities', 'workflows', 'workflow_nodes',
                           'workflow_runs', 'workflow_run_nodes', 'agent_runs',
                           'workflow_approvals', 'events', 'secrets']
  LOOP
    EXECUTE format('ALTER TABLE orchestration.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY project_isolation ON orchestration.%I
                      USING (project_id IN (SELECT orchestration.visible_projects()))', t);
    IF t <> 'secrets' THEN
      EXECUTE format('GRANT SELECT ON orchestration.%I
                        TO orchestration_admin, orchestration_operator, orchestration_approver', t);
    END IF;
  END LOOP;
END
$policies$;
GRANT SELECT ON orchestration.project_grants
  TO orchestration_admin, orchestration_operator, orchestration_approver;

CREATE FUNCTION orchestration.calling_role() RETURNS name
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(nullif(current_setting('role'), 'none'), session_user)::name $$;
COMMENT ON FUNCTION orchestration.calling_role() IS
  'The role on whose behalf the API is called: the SET ROLE role, else the session user. Unlike current_user it is not changed by SECURITY DEFINER functions, so the API''s functions can check the real caller';

CREATE FUNCTION orchestration.authorize(project_id integer, required_role name, who name DEFAULT NULL,
                                        object text DEFAULT NULL)
RETURNS name
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := coalesce(who, orchestration.calling_role());
BEGIN
  IF project_id IS NULL OR project_id <= 0 THEN
    RAISE EXCEPTION 'invalid project_id %', coalesce(project_id::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Project ids are positive integers.';
  END IF;
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = caller) THEN
    RETURN caller;
  END IF;
  IF NOT pg_has_role(caller, required_role, 'USAGE') THEN
    RAISE EXCEPTION 'permission denied: role "%" is not a member of %', caller, required_role
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('A superuser can run: GRANT %I TO %I;', required_role, caller);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM orchestration.project_grants g
                 WHERE g.project_id = authorize.project_id
                   AND pg_has_role(caller, g.role, 'USAGE')) THEN
    IF object IS NOT NULL THEN
      -- Acting on an existing object of a project the caller lacks: it must not learn
      -- that the object exists, just as row-level security hides it from its reads.
      RAISE EXCEPTION '% does not exist', object USING ERRCODE = 'undefined_object';
    END IF;
    RAISE EXCEPTION 'permission denied for project %', project_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('An orchestration_admin of project %s can run: SELECT orchestration.grant_project(%L, %s);',
                          project_id, caller, project_id);
  END IF;
  RETURN caller;
END
$$;
COMMENT ON FUNCTION orchestration.authorize(integer, name, name, text) IS
  'Raises insufficient_privilege unless the role (who, by default the calling role) is a superuser, or belongs to required_role and has been granted project_id; returns that role. With object (''agent 7''), a caller that lacks only the project is told the object does not exist. Every writing API function calls it first';

CREATE FUNCTION orchestration.grant_project(role name, project_id integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := orchestration.authorize(project_id, 'orchestration_admin');
BEGIN
  IF role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = grant_project.role) THEN
    RAISE EXCEPTION 'role "%" does not exist', role
      USING ERRCODE = 'undefined_object', HINT = 'Create it first: CREATE ROLE ... LOGIN;';
  END IF;
  INSERT INTO orchestration.project_grants (role, project_id, granted_by)
  VALUES (quote_ident(role)::regrole, project_id, caller)
  ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION orchestration.grant_project(name, integer) IS
  'Lets a role (and every role that belongs to it) use a project. Callable by superusers and by orchestration_admin members that have the project themselves. Granting twice is harmless';

CREATE FUNCTION orchestration.revoke_project(role name, project_id integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM orchestration.authorize(project_id, 'orchestration_admin');
  DELETE FROM orchestration.project_grants g
  WHERE g.role::oid = (SELECT oid FROM pg_roles r WHERE r.rolname = revoke_project.role)
    AND g.project_id = revoke_project.project_id;
  IF NOT FOUND THEN
    RAISE NOTICE 'role "%" had no grant for project %; nothing revoked', role, project_id;
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.revoke_project(name, integer) IS
  'Takes a project away from a role. Callable by superusers and by orchestration_admin members that have the project';
-- The agent registry API. Specs are validated by the C++ core (normalize_agent_spec),
-- so the rules and their messages exist once; this file does what needs the database.

CREATE FUNCTION orchestration.normalize_agent_spec(spec jsonb) RETURNS jsonb
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'orch_normalize_agent_spec';
COMMENT ON FUNCTION orchestration.normalize_agent_spec(jsonb) IS
  'Validates an agent spec as register_agent would (without touching the database) and returns it with every default filled in; errors name the offending field';

CREATE FUNCTION orchestration.validate_name(kind text, name text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'orch_validate_name';
COMMENT ON FUNCTION orchestration.validate_name(text, text) IS
  'Returns name if it is a valid name of that kind (agent, capability, workflow, node: 1-63 of [A-Za-z0-9_.-] starting with a letter or digit; secret, env: an environment variable name), else raises an error saying why';

CREATE FUNCTION orchestration.selftest_error_boundary(kind text) RETURNS text
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'orch_selftest_error_boundary';
COMMENT ON FUNCTION orchestration.selftest_error_boundary(text) IS
  'Diagnostics: raises one kind of error (user_error, std_exception, bad_alloc, unknown, postgres_error) from C++ through the extension''s error boundary; each must arrive as an ordinary SQL error. ''none'' returns ok. Superuser only';

-- The agent as get_agent() shows it: the normalized spec plus its identity. Feeding it
-- back to update_agent() changes nothing (the read-only keys are ignored there).
CREATE FUNCTION orchestration.agent_json(a orchestration.agents) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'id', a.id, 'project_id', a.project_id, 'name', a.name, 'type', a.type,
           'version', a.version, 'risk_level', a.risk_level, 'description', a.description,
           'registered_by', a.registered_by, 'registered_at', a.registered_at,
           'updated_at', a.updated_at))
      || CASE WHEN a.type = 'RULE' THEN
           jsonb_build_object('function', a.rule_function,
                              'limits', jsonb_build_object('timeout_seconds', a.timeout_seconds))
         ELSE
           jsonb_strip_nulls(jsonb_build_object('entry_path', a.entry_path))
           || jsonb_build_object(
                'image', a.image, 'command', to_jsonb(a.command), 'env', a.env,
                'secrets', to_jsonb(a.secrets), 'allow_network', a.allow_network,
                'limits', jsonb_build_object('memory_mb', a.memory_mb, 'cpus', a.cpus,
                                             'timeout_seconds', a.timeout_seconds,
                                             'pids', a.pids_limit))
         END
      || jsonb_build_object('capabilities', coalesce(
           (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                     'name', c.name, 'description', c.description)) ||
                   jsonb_build_object('input_schema', c.input_schema,
                                      'output_schema', c.output_schema) ORDER BY c.id)
              FROM orchestration.agent_capabilities c WHERE c.agent_id = a.id),
           '[]'))
$$;
COMMENT ON FUNCTION orchestration.agent_json(orchestration.agents) IS
  'An agent row and its capabilities as one JSON document, in the shape of the spec register_agent takes';

-- Resolves a RULE agent's "function" to regprocedure text, checking that it exists, has
-- the signature (jsonb) returns jsonb and that the registering role may execute it.
CREATE FUNCTION orchestration.resolve_rule_function(function_name text, caller name)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  fn regprocedure;
  p pg_proc;
  hint text := 'A RULE agent''s function takes one jsonb argument and returns jsonb, for example: '
               'CREATE FUNCTION public.triage(input jsonb) RETURNS jsonb LANGUAGE sql AS $f$ SELECT ... $f$;';
BEGIN
  -- Schema-qualified only: the worker runs the function later with its own search_path,
  -- so an unqualified name could resolve to something else then.
  IF position('.' in function_name) = 0 THEN
    RAISE EXCEPTION 'invalid agent spec field "function": "%" must be schema-qualified, like "public.%"',
                    function_name, function_name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    fn := to_regprocedure(CASE WHEN position('(' in function_name) > 0 THEN function_name
                               ELSE function_name || '(jsonb)' END);
  EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'invalid agent spec field "function": "%" is not a function name: %',
                    function_name, SQLERRM
      USING ERRCODE = 'invalid_parameter_value', HINT = hint;
  END;
  IF fn IS NULL THEN
    RAISE EXCEPTION 'invalid agent spec field "function": function %(jsonb) does not exist',
                    regexp_replace(function_name, '\(.*$', '')
      USING ERRCODE = 'undefined_function', HINT = hint;
  END IF;
  SELECT * INTO p FROM pg_proc WHERE oid = fn;
  IF p.prokind <> 'f' OR p.pronargs <> 1 OR p.proargtypes[0] <> 'jsonb'::regtype
     OR p.prorettype <> 'jsonb'::regtype OR p.proretset THEN
    RAISE EXCEPTION 'invalid agent spec field "function": % returns %, but a RULE agent''s function must be (jsonb) returns jsonb',
                    fn, CASE WHEN p.proretset THEN 'setof ' ELSE '' END || p.prorettype::regtype::text
      USING ERRCODE = 'invalid_parameter_value', HINT = hint;
  END IF;
  IF NOT has_function_privilege(caller, fn, 'EXECUTE') THEN
    RAISE EXCEPTION 'invalid agent spec field "function": role "%" may not execute %', caller, fn
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'RULE functions run with the privileges of the role that registered the agent.';
  END IF;
  RETURN fn::text;
END
$$;
COMMENT ON FUNCTION orchestration.resolve_rule_function(text, name) IS
  'Checks a RULE agent''s function (schema-qualified, (jsonb) returns jsonb, executable by the caller) and returns it as regprocedure text';

-- Writes a normalized spec into an agent row and its capabilities (insert when
-- agent_id is null). Shared by register_agent and update_agent.
CREATE FUNCTION orchestration.store_agent(agent_id bigint, project_id integer, spec jsonb,
                                          rule_function text, caller name)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  stored_id bigint := agent_id;
  in_use record;
BEGIN
  BEGIN
    IF stored_id IS NULL THEN
      -- The NOT NULL and CHECK columns here; the UPDATE below writes the rest, for
      -- both a new agent and an updated one.
      INSERT INTO orchestration.agents AS a
        (project_id, name, type, version, registered_by, timeout_seconds, image, rule_function)
      VALUES (store_agent.project_id, spec->>'name', (spec->>'type')::orchestration.agent_type,
              spec->>'version', caller, (spec#>>'{limits,timeout_seconds}')::integer,
              spec->>'image', store_agent.rule_function)
      RETURNING a.id INTO stored_id;
    END IF;
    UPDATE orchestration.agents a SET
      name = spec->>'name',
      type = (spec->>'type')::orchestration.agent_type,
      version = spec->>'version',
      risk_level = (spec->>'risk_level')::orchestration.risk_level,
      description = spec->>'description',
      image = spec->>'image',
      command = coalesce(ARRAY(SELECT jsonb_array_elements_text(spec->'command')), '{}'),
      entry_path = spec->>'entry_path',
      env = coalesce(spec->'env', '{}'),
      secrets = coalesce(ARRAY(SELECT jsonb_array_elements_text(spec->'secrets')), '{}'),
      memory_mb = (spec#>>'{limits,memory_mb}')::integer,
      cpus = (spec#>>'{limits,cpus}')::numeric,
      timeout_seconds = (spec#>>'{limits,timeout_seconds}')::integer,
      pids_limit = (spec#>>'{limits,pids}')::integer,
      allow_network = coalesce((spec->>'allow_network')::boolean, false),
      rule_function = store_agent.rule_function,
      updated_at = now()
    WHERE a.id = stored_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'agent "%" already exists in project %', spec->>'name', project_id
      USING ERRCODE = 'unique_violation',
            HINT = 'Agent names are unique per project; use orchestration.update_agent() to change the existing one.';
  END;

  -- A capability that a workflow node calls cannot be removed.
  SELECT c.name AS capability, w.name AS workflow, n.node_key INTO in_use
  FROM orchestration.agent_capabilities c
  JOIN orchestration.workflow_nodes n ON n.agent_id = c.agent_id AND n.action = c.name
  JOIN orchestration.workflows w ON w.id = n.workflow_id
  WHERE c.agent_id = stored_id
    AND c.name NOT IN (SELECT e->>'name' FROM jsonb_array_elements(spec->'capabilities') e)
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'capability "%" of agent "%" cannot be removed: workflow "%" (node "%") uses it',
                    in_use.capability, spec->>'name', in_use.workflow, in_use.node_key
      USING ERRCODE = 'dependent_objects_still_exist',
            HINT = 'Change that workflow first with orchestration.update_workflow(), or keep the capability in the spec.';
  END IF;
  DELETE FROM orchestration.agent_capabilities c
  WHERE c.agent_id = stored_id
    AND c.name NOT IN (SELECT e->>'name' FROM jsonb_array_elements(spec->'capabilities') e);
  INSERT INTO orchestration.agent_capabilities AS c
    (agent_id, project_id, name, description, input_schema, output_schema)
  SELECT stored_id, store_agent.project_id, e->>'name', e->>'description', e->'input_schema', e->'output_schema'
  FROM jsonb_array_elements(spec->'capabilities') e
  ON CONFLICT ON CONSTRAINT agent_capabilities_agent_id_name_key DO UPDATE
    SET description = excluded.description,
        input_schema = excluded.input_schema,
        output_schema = excluded.output_schema;
  RETURN stored_id;
END
$$;
COMMENT ON FUNCTION orchestration.store_agent(bigint, integer, jsonb, text, name) IS
  'Internal: writes a normalized agent spec into agents and agent_capabilities';

CREATE FUNCTION orchestration.register_agent(project_id integer, spec jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := orchestration.authorize(project_id, 'orchestration_admin');
  normalized jsonb;
BEGIN
  IF spec IS NULL THEN
    RAISE EXCEPTION 'agent spec must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  normalized := orchestration.normalize_agent_spec(spec);
  RETURN orchestration.store_agent(
    NULL, project_id, normalized,
    CASE WHEN normalized->>'type' = 'RULE'
         THEN orchestration.resolve_rule_function(normalized->>'function', caller) END,
    caller);
END
$$;
COMMENT ON FUNCTION orchestration.register_agent(integer, jsonb) IS
$$Registers an agent in a project and returns its id. spec: {name, type (LLM|RULE|API|SCRIPT), version, risk_level (AUTO|APPROVAL_REQUIRED), description, capabilities: [{name, description, input_schema, output_schema}], and either image, command, entry_path, env, secrets, limits {memory_mb, cpus, timeout_seconds, pids}, allow_network (container agents) or function (RULE agents: a schema-qualified (jsonb) returns jsonb function)}. Bad input raises an error naming the field and writes nothing. Requires orchestration_admin and the project$$;

CREATE FUNCTION orchestration.agent_for_write(agent_id bigint, OUT agent orchestration.agents, OUT caller name)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  SELECT * INTO agent FROM orchestration.agents a WHERE a.id = agent_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'agent % does not exist', coalesce(agent_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  caller := orchestration.authorize(agent.project_id, 'orchestration_admin', object => 'agent ' || agent_id);
END
$$;
COMMENT ON FUNCTION orchestration.agent_for_write(bigint) IS
  'Internal: locks an agent for update_agent/delete_agent after checking the caller may change it; an agent of a project the caller lacks is reported as not existing';

CREATE FUNCTION orchestration.update_agent(agent_id bigint, spec jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.agent_for_write(agent_id);
  normalized jsonb;
BEGIN
  IF spec IS NULL THEN
    RAISE EXCEPTION 'agent spec must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  -- get_agent() output can be edited and fed back: its read-only keys are ignored.
  normalized := orchestration.normalize_agent_spec(
    spec - ARRAY['id', 'project_id', 'registered_by', 'registered_at', 'updated_at']);
  PERFORM orchestration.store_agent(
    agent_id, (target.agent).project_id, normalized,
    CASE WHEN normalized->>'type' = 'RULE'
         THEN orchestration.resolve_rule_function(normalized->>'function', target.caller) END,
    target.caller);
  RETURN (SELECT orchestration.agent_json(a) FROM orchestration.agents a WHERE a.id = agent_id);
END
$$;
COMMENT ON FUNCTION orchestration.update_agent(bigint, jsonb) IS
  'Replaces an agent''s spec (the whole spec, as register_agent takes it; to change one field pass get_agent(id) || ''{"version": "2"}'') and returns the agent as get_agent shows it. A capability used by a workflow cannot be removed';

CREATE FUNCTION orchestration.delete_agent(agent_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.agent_for_write(agent_id);
  users text;
  live_run bigint;
BEGIN
  SELECT string_agg(DISTINCT format('"%s"', w.name), ', ') INTO users
  FROM orchestration.workflow_nodes n JOIN orchestration.workflows w ON w.id = n.workflow_id
  WHERE n.agent_id = delete_agent.agent_id;
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'agent "%" cannot be deleted: it is used by workflow %', (target.agent).name, users
      USING ERRCODE = 'dependent_objects_still_exist',
            HINT = 'Remove its nodes from those workflows with orchestration.update_workflow() first.';
  END IF;
  SELECT rn.run_id INTO live_run
  FROM orchestration.workflow_run_nodes rn
  JOIN orchestration.workflow_runs r ON r.id = rn.run_id
  WHERE rn.agent_id = delete_agent.agent_id
    AND r.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL')
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'agent "%" cannot be deleted: run % still uses it', (target.agent).name, live_run
      USING ERRCODE = 'dependent_objects_still_exist',
            HINT = 'Wait for the run to finish or cancel it with orchestration.cancel_run().';
  END IF;
  DELETE FROM orchestration.agents a WHERE a.id = delete_agent.agent_id;
END
$$;
COMMENT ON FUNCTION orchestration.delete_agent(bigint) IS
  'Deletes an agent and its capabilities. Refused while a workflow or a live run uses it. Past attempts in agent_runs keep the agent''s name';

CREATE FUNCTION orchestration.get_agent(agent_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  result jsonb;
BEGIN
  SELECT orchestration.agent_json(a) INTO result FROM orchestration.agents a WHERE a.id = agent_id;
  IF result IS NULL THEN
    RAISE EXCEPTION 'agent % does not exist', coalesce(agent_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  RETURN result;
END
$$;
COMMENT ON FUNCTION orchestration.get_agent(bigint) IS
  'The agent and its capabilities as JSON, in the shape register_agent takes (plus id, project_id and timestamps). Agents of projects the caller lacks do not exist for it';

CREATE FUNCTION orchestration.list_agents(project_id integer)
RETURNS TABLE (id bigint, name text, type orchestration.agent_type, version text,
               risk_level orchestration.risk_level, runs text, capabilities text[],
               description text, updated_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.id, a.name, a.type, a.version, a.risk_level,
         coalesce(a.rule_function, a.image),
         ARRAY(SELECT c.name FROM orchestration.agent_capabilities c
               WHERE c.agent_id = a.id ORDER BY c.name),
         a.description, a.updated_at
  FROM orchestration.agents a
  WHERE a.project_id = list_agents.project_id
  ORDER BY a.name
$$;
COMMENT ON FUNCTION orchestration.list_agents(integer) IS
  'The agents of a project, ordered by name, with their capability names and what they run (image or function). Empty for a project the caller lacks';
-- Contracts: each capability's input_schema and output_schema are JSON Schemas (draft
-- 2020-12). The engine checks inputs before a node runs and outputs before it succeeds;
-- these functions let anyone check a document the same way.

CREATE FUNCTION orchestration.json_schema_valid(schema jsonb, instance jsonb) RETURNS boolean
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'orch_json_schema_valid';
COMMENT ON FUNCTION orchestration.json_schema_valid(jsonb, jsonb) IS
  'Whether instance satisfies the JSON Schema (draft 2020-12; see the README for the keywords). An invalid schema is an error naming the schema location of the problem';

CREATE FUNCTION orchestration.json_schema_violations(schema jsonb, instance jsonb) RETURNS jsonb
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'orch_json_schema_violations';
COMMENT ON FUNCTION orchestration.json_schema_violations(jsonb, jsonb) IS
  'Internal: the violations of a JSON Schema as a JSON array of {path, message} (json_schema_errors returns them as rows)';

CREATE FUNCTION orchestration.json_schema_errors(schema jsonb, instance jsonb)
RETURNS TABLE (path text, message text)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT v->>'path', v->>'message'
  FROM jsonb_array_elements(orchestration.json_schema_violations(schema, instance)) WITH ORDINALITY e(v, i)
  ORDER BY i
$$;
COMMENT ON FUNCTION orchestration.json_schema_errors(jsonb, jsonb) IS
  'Why instance breaks the JSON Schema: one row per violation, path (a JSON Pointer into the instance, '''' for the whole of it) and message. No rows: it is valid';
-- Secrets. The table has no grants: only the extension owner (and so the worker, which
-- injects values into containers) reads it. These functions write names and values but
-- never return a value, and the values never appear in their error messages.
--
-- log_min_error_statement = panic on set_secret keeps Postgres from logging the failing
-- statement (which would contain the value) when set_secret raises an error. Callers
-- should still pass the value as a bind parameter: log_statement = 'all' logs the call
-- text before any function runs.

CREATE FUNCTION orchestration.set_secret(project_id integer, name text, value text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
BEGIN
  PERFORM orchestration.authorize(project_id, 'orchestration_admin');
  PERFORM orchestration.validate_name('secret', name);
  IF value IS NULL THEN
    RAISE EXCEPTION 'secret value must not be NULL' USING ERRCODE = 'null_value_not_allowed',
      HINT = 'Use orchestration.delete_secret() to remove a secret.';
  END IF;
  IF octet_length(value) > 65536 THEN
    RAISE EXCEPTION 'secret "%" is too long: % bytes, at most 65536', name, octet_length(value)
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  UPDATE orchestration.secrets s SET value = set_secret.value, updated_at = now()
  WHERE s.project_id = set_secret.project_id AND s.name = set_secret.name;
  IF NOT FOUND THEN
    INSERT INTO orchestration.secrets (project_id, name, value)
    VALUES (set_secret.project_id, set_secret.name, set_secret.value);
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.set_secret(integer, text, text) IS
  'Creates or replaces a project secret. Agents that list its name in "secrets" get it as an environment variable; the value is never returned by any function or view. Pass the value as a bind parameter so statement logging cannot record it. Requires orchestration_admin and the project';

CREATE FUNCTION orchestration.delete_secret(project_id integer, name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  users text;
BEGIN
  PERFORM orchestration.authorize(project_id, 'orchestration_admin');
  DELETE FROM orchestration.secrets s
  WHERE s.project_id = delete_secret.project_id AND s.name = delete_secret.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'secret "%" does not exist in project %', name, project_id
      USING ERRCODE = 'undefined_object';
  END IF;
  SELECT string_agg(format('"%s"', a.name), ', ' ORDER BY a.name) INTO users
  FROM orchestration.agents a
  WHERE a.project_id = delete_secret.project_id AND delete_secret.name = ANY (a.secrets);
  IF users IS NOT NULL THEN
    RAISE WARNING 'agent % still lists secret "%"; its runs will fail until the secret is set again',
                  users, name;
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.delete_secret(integer, text) IS
  'Deletes a project secret; warns when agents still list it. Requires orchestration_admin and the project';

CREATE FUNCTION orchestration.list_secrets(project_id integer)
RETURNS TABLE (name text, used_by text[], created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM orchestration.authorize(project_id, 'orchestration_admin');
  RETURN QUERY
    SELECT s.name,
           ARRAY(SELECT a.name FROM orchestration.agents a
                 WHERE a.project_id = s.project_id AND s.name = ANY (a.secrets) ORDER BY a.name),
           s.created_at, s.updated_at
    FROM orchestration.secrets s
    WHERE s.project_id = list_secrets.project_id
    ORDER BY s.name;
END
$$;
COMMENT ON FUNCTION orchestration.list_secrets(integer) IS
  'Names of a project''s secrets, which agents use them, and when they were set. Never the values. Requires orchestration_admin and the project';
CREATE FUNCTION orchestration.wake_relay() RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_relay';
COMMENT ON FUNCTION orchestration.wake_relay() IS
  'Internal: wakes this database''s NATS relay when the calling transaction commits (nothing happens on rollback)';

-- The transactional outbox. Every run, node and approval state change calls emit_event()
-- in the transaction that makes the change, so an event exists if and only if the change
-- committed. NOTIFY orchestration_events tells LISTENing clients at once; the NATS relay
-- publishes the rows in id order.

-- emit_events writes a batch (the scheduler records a claim round at once); emit_event is
-- the one-event case. Both build the document in one place.
CREATE FUNCTION orchestration.emit_events(project_ids integer[], types text[], run_ids bigint[],
                                          node_keys text[], data jsonb[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  emitted bigint;
BEGIN
  WITH inserted AS (
    INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
    SELECT u.project_id, u.type, u.subject, u.run_id,
           jsonb_build_object(
             'specversion', '1.0',
             'id', gen_random_uuid()::text,
             'source', format('/orchestration/%s/%s', current_database(), u.project_id),
             'type', u.type,
             'subject', u.subject,
             'time', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
             'datacontenttype', 'application/json',
             'data', jsonb_build_object('project_id', u.project_id, 'run_id', u.run_id,
                                        'traceparent', r.traceparent)
                     || CASE WHEN u.node_key IS NULL THEN '{}'::jsonb
                             ELSE jsonb_build_object('node', u.node_key) END
                     || coalesce(u.data, '{}'))
    FROM (SELECT u.*, 'run/' || u.run_id || coalesce('/node/' || u.node_key, '') AS subject
          FROM unnest(project_ids, types, run_ids, node_keys, data) WITH ORDINALITY
               AS u(project_id, type, run_id, node_key, data, position)) u
    LEFT JOIN orchestration.workflow_runs r ON r.id = u.run_id
    ORDER BY u.position
    RETURNING e.id, e.type, e.run_id
  )
  SELECT count(*) INTO emitted
  FROM (SELECT * FROM inserted ORDER BY id) i,
       LATERAL pg_notify('orchestration_events',
                         json_build_object('id', i.id, 'type', i.type, 'run_id', i.run_id)::text);
  IF emitted > 0 THEN
    PERFORM orchestration.wake_relay();
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.emit_events(integer[], text[], bigint[], text[], jsonb[]) IS
  'Internal: writes CloudEvents 1.0 documents to the outbox (orchestration.events) in array order, one per element (type is the full orchestration.<entity>.<event>), sends NOTIFY orchestration_events with each id, type and run id, and wakes the NATS relay at commit. Runs in the caller''s transaction: a rollback emits nothing';

CREATE FUNCTION orchestration.emit_event(project_id integer, entity text, event text,
                                         run_id bigint, node_key text, data jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM orchestration.emit_events(ARRAY[project_id], ARRAY['orchestration.' || entity || '.' || event],
                                    ARRAY[run_id], ARRAY[node_key], ARRAY[data]);
END
$$;
COMMENT ON FUNCTION orchestration.emit_event(integer, text, text, bigint, text, jsonb) IS
  'Internal: writes one event to the outbox, see emit_events; entity and event make its type orchestration.<entity>.<event>';
-- What the NATS relay worker runs. It publishes the outbox (orchestration.events) and
-- starts workflows whose trigger is {"type": "nats", "subject": "..."}; every statement it
-- needs is here, so the C++ side only moves rows and messages.

CREATE FUNCTION orchestration.nats_subject_of(project_id integer, type text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'orchestration.' || project_id || '.' || substr(type, length('orchestration.') + 1) $$;
COMMENT ON FUNCTION orchestration.nats_subject_of(integer, text) IS
  'The NATS subject of an event: orchestration.<project>.<entity>.<event>, e.g. orchestration.1.run.succeeded';

CREATE FUNCTION orchestration.relay_next_events(batch_size integer)
RETURNS TABLE (id bigint, msg_id text, subject text, payload text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT e.id, e.payload->>'id', orchestration.nats_subject_of(e.project_id, e.type), e.payload::text
  FROM orchestration.events e
  WHERE e.published_at IS NULL
  ORDER BY e.id
  LIMIT batch_size
$$;
COMMENT ON FUNCTION orchestration.relay_next_events(integer) IS
  'Internal (relay): the oldest unpublished events, in id order, with their NATS subject and message id (the CloudEvents id)';

CREATE FUNCTION orchestration.relay_mark_published(event_ids bigint[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  UPDATE orchestration.events e SET published_at = clock_timestamp()
  WHERE e.id = ANY(event_ids) AND e.published_at IS NULL
$$;
COMMENT ON FUNCTION orchestration.relay_mark_published(bigint[]) IS
  'Internal (relay): marks events published once NATS acknowledged them';

CREATE FUNCTION orchestration.prune_events(retention interval, max_rows integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  pruned bigint;
BEGIN
  DELETE FROM orchestration.events e
  WHERE e.id IN (SELECT o.id FROM orchestration.events o
                 WHERE o.published_at IS NOT NULL AND o.published_at < now() - retention
                 LIMIT max_rows);
  GET DIAGNOSTICS pruned = ROW_COUNT;
  -- Spans are telemetry: those an OTLP endpoint did not take within the retention go.
  DELETE FROM orchestration.span_queue q
  WHERE q.id IN (SELECT o.id FROM orchestration.span_queue o
                 WHERE o.created_at < now() - retention ORDER BY o.id LIMIT max_rows);
  RETURN pruned;
END
$$;
COMMENT ON FUNCTION orchestration.prune_events(interval, integer) IS
  'Deletes up to max_rows events published longer ago than retention and returns how many; unpublished events are never deleted. Also deletes up to max_rows queued spans older than retention (unsent: telemetry is not kept for ever). The relay calls it with orchestration.event_retention';

CREATE FUNCTION orchestration.nats_trigger_subjects() RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT DISTINCT w.trigger->>'subject' FROM orchestration.workflows w
  WHERE w.status = 'ACTIVE' AND w.trigger->>'type' = 'nats'
  ORDER BY 1
$$;
COMMENT ON FUNCTION orchestration.nats_trigger_subjects() IS
  'Internal (relay): the subjects the relay subscribes to, one per distinct trigger subject of an ACTIVE workflow';

CREATE FUNCTION orchestration.start_workflows_from_nats(pattern text, subject text, message text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  context jsonb;
  target orchestration.workflows;
  run_ids bigint[] := '{}';
BEGIN
  BEGIN
    context := message::jsonb;
  EXCEPTION WHEN invalid_text_representation THEN
    RETURN jsonb_build_object('error', format('the message on "%s" is not JSON (%s); no workflow was started', subject, SQLERRM));
  END;
  IF jsonb_typeof(context) IS DISTINCT FROM 'object' THEN
    RETURN jsonb_build_object('error', format('the message on "%s" is JSON %s, not an object; no workflow was started',
                                              subject, coalesce(jsonb_typeof(context), 'null')));
  END IF;
  FOR target IN SELECT * FROM orchestration.workflows w
                WHERE w.status = 'ACTIVE' AND w.trigger->>'type' = 'nats' AND w.trigger->>'subject' = pattern
                ORDER BY w.id LOOP
    -- Whoever defined the trigger chose to start runs from this subject.
    run_ids := run_ids || orchestration.create_run(target, 'nats', context, target.created_by);
  END LOOP;
  RETURN jsonb_build_object('run_ids', to_jsonb(run_ids));
END
$$;
COMMENT ON FUNCTION orchestration.start_workflows_from_nats(text, text, text) IS
  'Internal (relay): starts every ACTIVE workflow whose NATS trigger subject is pattern, with the message (a JSON object) as context; returns {"run_ids": [...]} or, for a message that is not a JSON object, {"error": "..."} having started nothing';

-- A workflow created, changed or archived may change the relay's subscriptions.
CREATE FUNCTION orchestration.workflows_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM orchestration.wake_relay();
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.workflows_changed() IS
  'Internal: wakes the NATS relay after a change to workflows, so that trigger subscriptions follow without a restart';
CREATE TRIGGER workflows_changed AFTER INSERT OR UPDATE OR DELETE ON orchestration.workflows
  FOR EACH STATEMENT EXECUTE FUNCTION orchestration.workflows_changed();
-- Workflow definitions: create, update, archive, read, and the DAG's topological levels.

CREATE FUNCTION orchestration.normalize_workflow_spec(spec jsonb) RETURNS jsonb
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'orch_normalize_workflow_spec';
COMMENT ON FUNCTION orchestration.normalize_workflow_spec(jsonb) IS
  'Validates a workflow spec (fields, node ids, depends_on, templates, conditions, no cycles, templates reading only upstream outputs) without touching the database and returns it with defaults filled in and, per node, its template references ("refs"), its topological depth ("level") and the nodes depending on it ("dependents")';

CREATE FUNCTION orchestration.workflow_levels(workflow_id bigint)
RETURNS TABLE (node_key text, level integer, depends_on text[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.node_key, n.level, n.depends_on
  FROM orchestration.workflow_nodes n
  WHERE n.workflow_id = workflow_levels.workflow_id
  ORDER BY 2, 1
$$;
COMMENT ON FUNCTION orchestration.workflow_levels(bigint) IS
  'Each node of a workflow with its topological depth (0: no dependencies; else one more than its deepest dependency), computed when the workflow was defined. The scheduler dispatches runnable nodes in this order';

-- Writes a normalized spec's nodes for a workflow, replacing what was there: resolves
-- each node's agent (by name, in the workflow's project) and action (a capability).
CREATE FUNCTION orchestration.store_workflow_nodes(workflow_id bigint, project_id integer, spec jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  missing record;
  known text;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS orchestration_spec_nodes (
    ordinal bigint, node_key text, agent_name text, action text, node jsonb,
    agent_id bigint, capability_exists boolean) ON COMMIT DROP;
  TRUNCATE orchestration_spec_nodes;
  INSERT INTO orchestration_spec_nodes
  SELECT e.ordinal, e.node->>'id', e.node->>'agent', e.node->>'action', e.node, a.id,
         EXISTS (SELECT 1 FROM orchestration.agent_capabilities c
                 WHERE c.agent_id = a.id AND c.name = e.node->>'action')
  FROM jsonb_array_elements(spec->'nodes') WITH ORDINALITY AS e(node, ordinal)
  LEFT JOIN orchestration.agents a
    ON a.project_id = store_workflow_nodes.project_id AND a.name = e.node->>'agent';

  SELECT * INTO missing FROM orchestration_spec_nodes s
  WHERE s.agent_id IS NULL OR NOT s.capability_exists ORDER BY s.ordinal LIMIT 1;
  IF FOUND AND missing.agent_id IS NULL THEN
    SELECT string_agg(a.name, ', ' ORDER BY a.name) INTO known
    FROM orchestration.agents a WHERE a.project_id = store_workflow_nodes.project_id;
    RAISE EXCEPTION 'invalid workflow spec: node "%": agent "%" does not exist in project %',
                    missing.node_key, missing.agent_name, project_id
      USING ERRCODE = 'undefined_object',
            HINT = CASE WHEN known IS NULL THEN 'Project ' || project_id || ' has no agents yet; register one with orchestration.register_agent().'
                        ELSE 'Agents of project ' || project_id || ': ' || known || '.' END;
  ELSIF FOUND THEN
    SELECT string_agg(c.name, ', ' ORDER BY c.name) INTO known
    FROM orchestration.agent_capabilities c WHERE c.agent_id = missing.agent_id;
    RAISE EXCEPTION 'invalid workflow spec: node "%": agent "%" has no capability "%"',
                    missing.node_key, missing.agent_name, missing.action
      USING ERRCODE = 'undefined_object', HINT = 'Its capabilities: ' || known || '.';
  END IF;

  DELETE FROM orchestration.workflow_nodes n WHERE n.workflow_id = store_workflow_nodes.workflow_id;
  INSERT INTO orchestration.workflow_nodes
    (workflow_id, project_id, node_key, agent_id, action, inputs, depends_on, approval_required,
     retries, retry_backoff_seconds, timeout_seconds, condition, run_if_skipped, refs, dependents,
     level)
  SELECT store_workflow_nodes.workflow_id, store_workflow_nodes.project_id, s.node_key, s.agent_id,
         s.action, s.node->'inputs',
         ARRAY(SELECT jsonb_array_elements_text(s.node->'depends_on')),
         (s.node->>'approval_required')::boolean, (s.node->>'retries')::integer,
         (s.node->>'retry_backoff_seconds')::numeric, (s.node->>'timeout_seconds')::integer,
         nullif(s.node->'when', 'null'), (s.node->>'run_if_skipped')::boolean,
         ARRAY(SELECT jsonb_array_elements_text(s.node->'refs')),
         ARRAY(SELECT jsonb_array_elements_text(s.node->'dependents')),
         (s.node->>'level')::integer
  FROM orchestration_spec_nodes s
  ORDER BY s.ordinal;
END
$$;
COMMENT ON FUNCTION orchestration.store_workflow_nodes(bigint, integer, jsonb) IS
  'Internal: replaces a workflow''s nodes with those of a normalized spec (whose graph normalize_workflow_spec checked), resolving agents and actions in the project';

CREATE FUNCTION orchestration.create_workflow(project_id integer, spec jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := orchestration.authorize(project_id, 'orchestration_admin');
  normalized jsonb;
  new_id bigint;
BEGIN
  IF spec IS NULL THEN
    RAISE EXCEPTION 'workflow spec must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  normalized := orchestration.normalize_workflow_spec(spec);
  IF EXISTS (SELECT 1 FROM orchestration.workflows w
             WHERE w.project_id = create_workflow.project_id AND w.name = normalized->>'name') THEN
    RAISE EXCEPTION 'workflow "%" already exists in project %', normalized->>'name', project_id
      USING ERRCODE = 'unique_violation',
            HINT = 'Workflow names are unique per project; use orchestration.update_workflow() to change it.';
  END IF;
  INSERT INTO orchestration.workflows AS w (project_id, name, description, trigger, status, created_by)
  VALUES (project_id, normalized->>'name', normalized->>'description', normalized->'trigger',
          (normalized->>'status')::orchestration.workflow_status, caller)
  RETURNING w.id INTO new_id;
  PERFORM orchestration.store_workflow_nodes(new_id, project_id, normalized);
  RETURN new_id;
END
$$;
COMMENT ON FUNCTION orchestration.create_workflow(integer, jsonb) IS
$$Defines a workflow and returns its id. spec: {name, description, trigger ({"type": "manual"} | {"type": "table"} | {"type": "nats", "subject": "..."}), status (ACTIVE|DRAFT|ARCHIVED), nodes: [{id, agent, action, inputs, depends_on, approval_required, retries, retry_backoff_seconds, timeout_seconds, when, run_if_skipped}]}. Rejected, with nothing written: cycles, unknown dependencies, duplicate node ids, unknown agents or actions, template references to nodes that are not upstream. Requires orchestration_admin and the project$$;

CREATE FUNCTION orchestration.workflow_for_write(workflow_id bigint, OUT workflow orchestration.workflows, OUT caller name)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  SELECT * INTO workflow FROM orchestration.workflows w WHERE w.id = workflow_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'workflow % does not exist', coalesce(workflow_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  caller := orchestration.authorize(workflow.project_id, 'orchestration_admin',
                                    object => 'workflow ' || workflow_id);
END
$$;
COMMENT ON FUNCTION orchestration.workflow_for_write(bigint) IS
  'Internal: locks a workflow for update_workflow/archive_workflow after checking the caller may change it; a workflow of a project the caller lacks is reported as not existing';

CREATE FUNCTION orchestration.update_workflow(workflow_id bigint, spec jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.workflow_for_write(workflow_id);
  normalized jsonb;
BEGIN
  IF spec IS NULL THEN
    RAISE EXCEPTION 'workflow spec must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  -- get_workflow() output can be edited and fed back: its read-only keys are ignored.
  spec := spec - ARRAY['id', 'project_id', 'version', 'created_by', 'created_at', 'updated_at'];
  IF jsonb_typeof(spec->'nodes') = 'array' THEN
    spec := jsonb_set(spec, '{nodes}', (SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(n) = 'object' THEN n - 'level' ELSE n END
                                                                  ORDER BY i), '[]')
                                        FROM jsonb_array_elements(spec->'nodes') WITH ORDINALITY e(n, i)));
  END IF;
  normalized := orchestration.normalize_workflow_spec(spec);
  IF EXISTS (SELECT 1 FROM orchestration.workflows w
             WHERE w.project_id = (target.workflow).project_id AND w.name = normalized->>'name'
               AND w.id <> update_workflow.workflow_id) THEN
    RAISE EXCEPTION 'workflow "%" already exists in project %', normalized->>'name', (target.workflow).project_id
      USING ERRCODE = 'unique_violation';
  END IF;
  UPDATE orchestration.workflows w SET
    name = normalized->>'name', description = normalized->>'description',
    trigger = normalized->'trigger',
    status = (normalized->>'status')::orchestration.workflow_status,
    version = w.version + 1, updated_at = now()
  WHERE w.id = update_workflow.workflow_id;
  PERFORM orchestration.store_workflow_nodes(workflow_id, (target.workflow).project_id, normalized);
  RETURN orchestration.workflow_json(workflow_id);
END
$$;
COMMENT ON FUNCTION orchestration.update_workflow(bigint, jsonb) IS
  'Replaces a workflow''s spec (as create_workflow takes it) and increments its version; returns it as get_workflow shows it. Runs already started keep the definition they started with';

CREATE FUNCTION orchestration.archive_workflow(workflow_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.workflow_for_write(workflow_id);
BEGIN
  UPDATE orchestration.workflows w SET status = 'ARCHIVED', updated_at = now()
  WHERE w.id = archive_workflow.workflow_id;
END
$$;
COMMENT ON FUNCTION orchestration.archive_workflow(bigint) IS
  'Archives a workflow: it can no longer be started (its NATS trigger stops too); its runs and history stay. update_workflow with "status": "ACTIVE" brings it back';

CREATE FUNCTION orchestration.workflow_json(workflow_id bigint) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'id', w.id, 'project_id', w.project_id, 'name', w.name, 'description', w.description,
           'version', w.version, 'created_by', w.created_by, 'created_at', w.created_at,
           'updated_at', w.updated_at))
         || jsonb_build_object('trigger', w.trigger, 'status', w.status, 'nodes', coalesce(
           (SELECT jsonb_agg(jsonb_build_object(
                     'id', n.node_key, 'agent', a.name, 'action', n.action, 'inputs', n.inputs,
                     'depends_on', to_jsonb(n.depends_on), 'approval_required', n.approval_required,
                     'retries', n.retries, 'retry_backoff_seconds', n.retry_backoff_seconds,
                     'timeout_seconds', n.timeout_seconds, 'when', n.condition,
                     'run_if_skipped', n.run_if_skipped, 'level', n.level)
                   ORDER BY n.level, n.node_key)
            FROM orchestration.workflow_nodes n JOIN orchestration.agents a ON a.id = n.agent_id
            WHERE n.workflow_id = w.id), '[]'))
  FROM orchestration.workflows w WHERE w.id = workflow_json.workflow_id
$$;
COMMENT ON FUNCTION orchestration.workflow_json(bigint) IS
  'Internal: a workflow and its nodes as one JSON document, in the shape create_workflow takes';

CREATE FUNCTION orchestration.get_workflow(workflow_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  result jsonb := orchestration.workflow_json(workflow_id);
BEGIN
  IF result IS NULL THEN
    RAISE EXCEPTION 'workflow % does not exist', coalesce(workflow_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  RETURN result;
END
$$;
COMMENT ON FUNCTION orchestration.get_workflow(bigint) IS
  'The workflow and its nodes as JSON, in the shape create_workflow takes (plus id, version, each node''s level and timestamps). Workflows of projects the caller lacks do not exist for it';
-- Runs: starting them (SQL call or table trigger), the node state transitions the
-- scheduler drives, cancelling, retrying and waiting.

CREATE FUNCTION orchestration.wake_scheduler() RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_scheduler';
COMMENT ON FUNCTION orchestration.wake_scheduler() IS
  'Wakes this database''s scheduler worker when the current transaction commits (nothing happens on rollback). The API calls it whenever it creates work';

CREATE FUNCTION orchestration.reserve_run(run_id bigint) RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'orch_reserve_run';
COMMENT ON FUNCTION orchestration.reserve_run(bigint) IS
  'Internal: until this transaction ends, the scheduler claims no node of the run, so a caller about to lock the run''s row (cancel_run, retry_run, approve, reject) gets it promptly instead of racing the scheduler for it';

-- W3C trace context: a run is a span, a child of the caller's span when context.traceparent
-- is valid (else the root of a new trace); each node attempt is a child span of its run.
CREATE FUNCTION orchestration.child_traceparent(parent text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN '00-'
         || CASE WHEN parent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
                      AND substr(parent, 4, 32) <> repeat('0', 32)
                 THEN substr(parent, 4, 32)
                 ELSE replace(gen_random_uuid()::text, '-', '') END
         || '-' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 16) || '-01';
END
$$;
COMMENT ON FUNCTION orchestration.child_traceparent(text) IS
  'A W3C traceparent for a new span in the same trace as parent (a new trace when parent is not a valid traceparent): a run''s span in its caller''s trace, a node attempt''s in its run''s';

-- Creates a run of a workflow: the run row, a copy of every node, one event. Shared by
-- start_workflow, the table trigger and the NATS relay.
CREATE FUNCTION orchestration.create_run(workflow orchestration.workflows, trigger text,
                                         context jsonb, started_by name)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  run_id bigint;
BEGIN
  IF workflow.status <> 'ACTIVE' THEN
    RAISE EXCEPTION 'workflow "%" is %; only ACTIVE workflows can be started', workflow.name, workflow.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set "status": "ACTIVE" with orchestration.update_workflow().';
  END IF;
  context := coalesce(context, '{}');
  IF jsonb_typeof(context) <> 'object' THEN
    RAISE EXCEPTION 'run context must be a JSON object, not %', jsonb_typeof(context)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Templates read it as {{ context.<key> }}: pass {"key": value}.';
  END IF;
  INSERT INTO orchestration.workflow_runs AS r
    (workflow_id, project_id, workflow_version, trigger, context, traceparent, started_by)
  VALUES (workflow.id, workflow.project_id, workflow.version, trigger, context,
          orchestration.child_traceparent(context->>'traceparent'), started_by)
  RETURNING r.id INTO run_id;
  INSERT INTO orchestration.workflow_run_nodes
    (run_id, project_id, node_key, agent_id, action, inputs, depends_on, approval_required,
     retries, retry_backoff_seconds, timeout_seconds, condition, run_if_skipped, refs,
     dependents, level, pending_deps)
  SELECT run_id, n.project_id, n.node_key, n.agent_id, n.action, n.inputs, n.depends_on,
         n.approval_required, n.retries, n.retry_backoff_seconds, n.timeout_seconds,
         n.condition, n.run_if_skipped, n.refs, n.dependents, n.level, cardinality(n.depends_on)
  FROM orchestration.workflow_nodes n
  WHERE n.workflow_id = workflow.id
  ORDER BY n.level, n.node_key;
  PERFORM orchestration.emit_event(workflow.project_id, 'run', 'created', run_id, NULL,
            jsonb_build_object('workflow', workflow.name, 'workflow_id', workflow.id,
                               'status', 'PENDING', 'trigger', trigger, 'started_by', started_by));
  PERFORM orchestration.wake_scheduler();
  RETURN run_id;
END
$$;
COMMENT ON FUNCTION orchestration.create_run(orchestration.workflows, text, jsonb, name) IS
  'Internal: creates a PENDING run of an ACTIVE workflow with a copy of its nodes, in the caller''s transaction, and wakes the scheduler at commit';

CREATE FUNCTION orchestration.start_workflow(project_id integer, workflow text, context jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := orchestration.authorize(project_id, 'orchestration_operator');
  target orchestration.workflows;
BEGIN
  SELECT * INTO target FROM orchestration.workflows w
  WHERE w.project_id = start_workflow.project_id AND w.name = start_workflow.workflow;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'workflow "%" does not exist in project %', workflow, project_id
      USING ERRCODE = 'undefined_object';
  END IF;
  RETURN orchestration.create_run(target, 'manual', context, caller);
END
$$;
COMMENT ON FUNCTION orchestration.start_workflow(integer, text, jsonb) IS
  'Starts a run of an ACTIVE workflow with a context (a JSON object templates read as {{ context.<key> }}; a "traceparent" in it continues that trace) and returns the run id. Runs in the caller''s transaction: a rollback leaves no run. Requires orchestration_operator and the project';

CREATE FUNCTION orchestration.start_workflow_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  project integer;
  owner name;
  target orchestration.workflows;
BEGIN
  IF TG_LEVEL <> 'ROW' OR TG_NARGS <> 2 THEN
    RAISE EXCEPTION 'orchestration.start_workflow_trigger must be a FOR EACH ROW trigger with two arguments'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'CREATE TRIGGER ... AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger(''<project_id>'', ''<workflow>'');';
  END IF;
  BEGIN
    project := TG_ARGV[0]::integer;
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RAISE EXCEPTION 'start_workflow_trigger: the first argument must be a project id, not "%"', TG_ARGV[0]
      USING ERRCODE = 'invalid_parameter_value';
  END;
  -- The table's owner chose to attach this trigger, so the owner must be allowed to
  -- start runs in the project; whoever writes the row need not be.
  SELECT c.relowner::regrole::name INTO owner FROM pg_class c WHERE c.oid = TG_RELID;
  PERFORM orchestration.authorize(project, 'orchestration_operator', owner);
  SELECT * INTO target FROM orchestration.workflows w
  WHERE w.project_id = project AND w.name = TG_ARGV[1];
  IF NOT FOUND THEN
    RAISE EXCEPTION 'start_workflow_trigger on %.%: workflow "%" does not exist in project %',
                    TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[1], project
      USING ERRCODE = 'undefined_object';
  END IF;
  PERFORM orchestration.create_run(
    target, 'table:' || quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME),
    jsonb_build_object('table', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 'operation', TG_OP,
                       'new', CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
                       'old', CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END),
    orchestration.calling_role());
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION orchestration.start_workflow_trigger() IS
$$Trigger function: CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger('<project_id>', '<workflow>') starts a run for every row change, in the same transaction, with context {table, operation, new, old}. The table's owner needs orchestration_operator and the project$$;

-- ---------------------------------------------------------------------------------------
-- Node state transitions.
--
-- Lock order: every transaction that changes a run takes the run's row lock before it
-- touches the run's nodes or approvals. The scheduler takes it when it claims (SKIP
-- LOCKED), the API functions first thing; so a transaction waits only while it holds no
-- other lock of that run, and no deadlock can form. The scheduler calls these in its own transactions; each keeps
-- the run's state, its counters and its events consistent.

CREATE FUNCTION orchestration.refresh_run(run_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  project integer;
  current_status orchestration.run_status;
  next_status orchestration.run_status;
BEGIN
  -- One statement; each EXISTS is one probe of the live-nodes index, and CASE stops at the
  -- first that decides.
  SELECT r.project_id, r.status, CASE
           WHEN r.status IN ('SUCCESS', 'FAILED', 'CANCELLED') THEN r.status  -- final; a late result never reopens a run
           WHEN NOT EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                            WHERE n.run_id = r.id AND n.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL'))
             THEN CASE WHEN EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                                    WHERE n.run_id = r.id AND n.status = 'FAILED')
                       THEN 'FAILED' ELSE 'SUCCESS' END::orchestration.run_status
           -- "pending_deps <= 0", not "= 0": the same rows (a PENDING node's counter never
           -- goes below 0), but only the live-nodes index can serve it; with "= 0" the
           -- planner may pick the queue index and read every runnable node of every run.
           WHEN EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                        WHERE n.run_id = r.id AND n.status = 'RUNNING')
                OR EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                           WHERE n.run_id = r.id AND n.status = 'PENDING' AND n.pending_deps <= 0)
             THEN 'RUNNING'
           WHEN EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                        WHERE n.run_id = r.id AND n.status = 'WAITING_APPROVAL')
             THEN 'WAITING_APPROVAL'
           ELSE 'RUNNING' END
    INTO project, current_status, next_status
  FROM orchestration.workflow_runs r WHERE r.id = refresh_run.run_id;
  IF next_status = current_status THEN
    RETURN;
  END IF;
  UPDATE orchestration.workflow_runs r SET
    status = next_status,
    started_at = coalesce(r.started_at, clock_timestamp()),
    finished_at = CASE WHEN next_status IN ('SUCCESS', 'FAILED') THEN clock_timestamp() END
  WHERE r.id = run_id;
  PERFORM orchestration.emit_event(project, 'run',
            CASE next_status WHEN 'RUNNING' THEN CASE WHEN current_status = 'PENDING' THEN 'started' ELSE 'resumed' END
                             WHEN 'SUCCESS' THEN 'succeeded' WHEN 'FAILED' THEN 'failed'
                             ELSE 'waiting_approval' END,
            run_id, NULL, jsonb_build_object('status', next_status));
END
$$;
COMMENT ON FUNCTION orchestration.refresh_run(bigint) IS
  'Internal: derives a live run''s status from its nodes (RUNNING while something can progress, WAITING_APPROVAL when only approvals can, SUCCESS or FAILED when every node is final) and emits an event when it changes';

-- A node is final as SKIPPED: its dependents either treat it as satisfied (run_if_skipped)
-- or are skipped too, transitively.
CREATE FUNCTION orchestration.skip_node(node_id bigint, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  queue bigint[] := ARRAY[node_id];
  reasons text[] := ARRAY[reason];
  current_id bigint;
  current_reason text;
  node orchestration.workflow_run_nodes;
  dependent orchestration.workflow_run_nodes;
BEGIN
  WHILE cardinality(queue) > 0 LOOP
    current_id := queue[1];
    current_reason := reasons[1];
    queue := queue[2:];
    reasons := reasons[2:];
    UPDATE orchestration.workflow_run_nodes n
       SET status = 'SKIPPED', skip_reason = current_reason, finished_at = clock_timestamp()
     WHERE n.id = current_id AND n.status IN ('PENDING', 'RUNNING')
    RETURNING * INTO node;
    CONTINUE WHEN NOT FOUND;
    PERFORM orchestration.emit_event(node.project_id, 'node', 'skipped', node.run_id, node.node_key,
              jsonb_build_object('status', 'SKIPPED', 'reason', current_reason));
    FOR dependent IN
      SELECT * FROM orchestration.workflow_run_nodes d
      WHERE d.run_id = node.run_id AND d.node_key = ANY (node.dependents) AND d.status = 'PENDING'
      ORDER BY d.id FOR UPDATE
    LOOP
      IF dependent.run_if_skipped THEN
        UPDATE orchestration.workflow_run_nodes d SET pending_deps = d.pending_deps - 1
        WHERE d.id = dependent.id;
      ELSE
        queue := queue || dependent.id;
        reasons := reasons || format('dependency "%s" was skipped', node.node_key);
      END IF;
    END LOOP;
  END LOOP;
  PERFORM orchestration.refresh_run(node.run_id);
END
$$;
COMMENT ON FUNCTION orchestration.skip_node(bigint, text) IS
  'Internal: marks a node SKIPPED with a reason; dependents with run_if_skipped count it as done, the others are skipped too';

-- A node failed for good: the run fails, what has not started is skipped, and waiting
-- approvals are closed. Nodes already running finish and are recorded.
CREATE FUNCTION orchestration.fail_node(node_id bigint, error text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  skipped orchestration.workflow_run_nodes;
  run_status orchestration.run_status;
BEGIN
  UPDATE orchestration.workflow_run_nodes n
     SET status = 'FAILED', error = fail_node.error, finished_at = clock_timestamp()
   WHERE n.id = node_id
  RETURNING * INTO node;
  PERFORM orchestration.emit_event(node.project_id, 'node', 'failed', node.run_id, node.node_key,
            jsonb_build_object('status', 'FAILED', 'error', error, 'attempt', node.attempt));
  UPDATE orchestration.workflow_runs r
     SET status = 'FAILED', finished_at = clock_timestamp(),
         error = format('node "%s" failed: %s', node.node_key, fail_node.error)
   WHERE r.id = node.run_id AND r.status NOT IN ('SUCCESS', 'FAILED', 'CANCELLED')
  RETURNING r.status INTO run_status;
  IF run_status IS NULL THEN
    RETURN;  -- the run had already ended (a late result of a cancelled run)
  END IF;
  FOR skipped IN
    UPDATE orchestration.workflow_run_nodes n
       SET status = 'SKIPPED', skip_reason = 'run failed', finished_at = clock_timestamp()
     WHERE n.run_id = node.run_id AND n.status IN ('PENDING', 'WAITING_APPROVAL')
    RETURNING *
  LOOP
    PERFORM orchestration.emit_event(skipped.project_id, 'node', 'skipped', skipped.run_id,
              skipped.node_key, jsonb_build_object('status', 'SKIPPED', 'reason', 'run failed'));
  END LOOP;
  UPDATE orchestration.workflow_approvals a
     SET status = 'REJECTED', responded_at = now(), notes = 'run failed before an answer'
   WHERE a.workflow_run_id = node.run_id AND a.status = 'PENDING';
  PERFORM orchestration.emit_event(node.project_id, 'run', 'failed', node.run_id, NULL,
            jsonb_build_object('status', 'FAILED', 'error',
                               format('node "%s" failed: %s', node.node_key, fail_node.error)));
END
$$;
COMMENT ON FUNCTION orchestration.fail_node(bigint, text) IS
  'Internal: fails a node for good, fails its run and skips every node of the run that has not started';

-- The lock order above, for a transaction that starts from a node: its run's row first.
-- Returns the run's status.
CREATE FUNCTION orchestration.lock_run_of(node_id bigint) RETURNS orchestration.run_status
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.status FROM orchestration.workflow_runs r
  WHERE r.id = (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = lock_run_of.node_id)
  FOR UPDATE
$$;
COMMENT ON FUNCTION orchestration.lock_run_of(bigint) IS
  'Internal: locks the row of the node''s run (the lock order: a run''s row before its nodes) and returns the run''s status';

-- The outcomes of attempts, in the order given. Each becomes an agent_runs row, and its
-- node moves on: SUCCESS releases its dependents; a failure is retried after exponential
-- backoff while retries remain, else it fails the node and the run. The scheduler records
-- a claim round of RULE nodes in one call (one statement per step, not per node) and a
-- finished container in a call of its own. Arrays left NULL (exit_codes, log_tails,
-- container_ids: RULE attempts have none) count as all NULL.
CREATE FUNCTION orchestration.record_attempts(node_ids bigint[], succeeded boolean[], inputs jsonb[],
                                              outputs jsonb[], errors text[],
                                              started_at timestamptz[], finished_at timestamptz[],
                                              scheduler_round bigint,
                                              exit_codes integer[] DEFAULT NULL,
                                              log_tails text[] DEFAULT NULL,
                                              container_ids text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Its statements take arrays: planned for their sizes each time, they would cost more
-- to plan than to run. So each has one generic plan, made the first time, perhaps while
-- the tables were small and had no statistics: it must not be a scan of a whole table
-- (enable_seqscan), and each statement is written to be driven by its arrays through
-- unique indexes whatever the statistics say. A disabled scan costs 1e10 to the planner,
-- which would also make it compile the plan (jit).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  event_projects integer[];
  event_types text[];
  event_runs bigint[];
  event_nodes text[];
  event_data jsonb[];
  succeeded_ids bigint[];
  succeeded_runs bigint[];
  released bigint[];
  failed_ids bigint[];
  failed_errors text[];
BEGIN
  IF cardinality(node_ids) IS DISTINCT FROM cardinality(succeeded)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(inputs)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(started_at)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(finished_at) THEN
    RAISE EXCEPTION 'record_attempts: the arrays must have one element per node'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The lock order: the runs' rows first. The scheduler's claim holds them already for
  -- RULE nodes; a container's result arrives in a transaction of its own, while
  -- cancel_run or approve may hold its run.
  PERFORM 1 FROM orchestration.workflow_runs r
  WHERE r.id IN (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (node_ids))
  ORDER BY r.id FOR UPDATE OF r;

  WITH attempt AS (
    SELECT u.*, n.project_id, n.run_id, n.node_key, n.agent_id, n.retries, n.attempt + 1 AS number,
           CASE WHEN n.status NOT IN ('PENDING', 'RUNNING') THEN NULL  -- cancelled or skipped meanwhile: only the attempt is kept
                WHEN r.status = 'CANCELLED' THEN 'cancelled'            -- a container stopped by cancel_run
                WHEN u.succeeded THEN 'succeeded'
                WHEN n.attempt + 1 <= n.retries THEN 'retrying'
                ELSE 'failed' END AS outcome,
           -- Exponential backoff: retry_backoff_seconds, then twice that, then four times, ...
           u.finished_at + make_interval(secs => n.retry_backoff_seconds * 2 ^ n.attempt) AS retry_at,
           -- The attempt's span: the one its container got, or a new one in the run's trace.
           coalesce(CASE WHEN n.status = 'RUNNING' THEN n.attempt_traceparent END,
                    orchestration.child_traceparent(r.traceparent)) AS traceparent
    FROM unnest(node_ids, succeeded, inputs, outputs, errors, started_at, finished_at,
                exit_codes, log_tails, container_ids) WITH ORDINALITY
         AS u(node_id, succeeded, input, output, error, started_at, finished_at, exit_code,
              log_tail, container_id, position)
    JOIN orchestration.workflow_run_nodes n ON n.id = u.node_id
    JOIN orchestration.workflow_runs r ON r.id = n.run_id
  ), kept AS (
    INSERT INTO orchestration.agent_runs
      (project_id, agent_id, agent_name, workflow_run_id, run_node_id, attempt, input_json,
       output_json, status, error, exit_code, log_tail, container_id, scheduler_round,
       started_at, finished_at, duration_ms, traceparent)
    SELECT t.project_id, t.agent_id, ag.name, t.run_id, t.node_id, t.number, t.input, t.output,
           CASE WHEN t.succeeded THEN 'SUCCESS' ELSE 'FAILED' END::orchestration.run_status,
           t.error, t.exit_code, t.log_tail, t.container_id, scheduler_round, t.started_at,
           t.finished_at, (extract(epoch FROM t.finished_at - t.started_at) * 1000)::integer,
           t.traceparent
    FROM attempt t JOIN orchestration.agents ag ON ag.id = t.agent_id
    ORDER BY t.position
  ), moved AS (
    -- One update per node: its attempt count and, unless it fails for good (fail_node
    -- below does that), its new state.
    UPDATE orchestration.workflow_run_nodes n SET
      attempt = t.number,
      status = CASE t.outcome WHEN 'cancelled' THEN 'CANCELLED' WHEN 'succeeded' THEN 'SUCCESS'
                              WHEN 'retrying' THEN 'PENDING' ELSE n.status END,
      output = CASE WHEN t.outcome = 'succeeded' THEN t.output ELSE n.output END,
      error = CASE t.outcome WHEN 'cancelled' THEN 'run cancelled' WHEN 'succeeded' THEN NULL
                             WHEN 'retrying' THEN t.error ELSE n.error END,
      resolved_input = CASE WHEN t.outcome IS NULL THEN n.resolved_input ELSE t.input END,
      started_at = CASE WHEN t.outcome IN ('succeeded', 'retrying', 'failed')
                        THEN coalesce(n.started_at, t.started_at) ELSE n.started_at END,
      finished_at = CASE WHEN t.outcome IN ('cancelled', 'succeeded') THEN t.finished_at ELSE n.finished_at END,
      next_attempt_at = CASE t.outcome WHEN 'succeeded' THEN NULL WHEN 'retrying' THEN t.retry_at
                                       ELSE n.next_attempt_at END
    FROM attempt t WHERE n.id = t.node_id
  )
  SELECT array_agg(t.project_id ORDER BY t.position) FILTER (WHERE t.outcome <> 'failed'),
         array_agg('orchestration.node.' || t.outcome ORDER BY t.position) FILTER (WHERE t.outcome <> 'failed'),
         array_agg(t.run_id ORDER BY t.position) FILTER (WHERE t.outcome <> 'failed'),
         array_agg(t.node_key ORDER BY t.position) FILTER (WHERE t.outcome <> 'failed'),
         array_agg(CASE t.outcome
                     WHEN 'cancelled' THEN jsonb_build_object('status', 'CANCELLED')
                     WHEN 'succeeded' THEN jsonb_build_object('status', 'SUCCESS', 'attempt', t.number,
                                                              'output', t.output)
                     ELSE jsonb_build_object('status', 'PENDING', 'attempt', t.number, 'error', t.error,
                                             'next_attempt_at', t.retry_at) END
                   ORDER BY t.position) FILTER (WHERE t.outcome <> 'failed'),
         array_agg(t.node_id ORDER BY t.position) FILTER (WHERE t.outcome = 'succeeded'),
         array_agg(DISTINCT t.run_id ORDER BY t.run_id) FILTER (WHERE t.outcome = 'succeeded'),
         array_agg(t.node_id ORDER BY t.position) FILTER (WHERE t.outcome = 'failed'),
         array_agg(CASE WHEN t.retries > 0 THEN format('%s (after %s attempts)', t.error, t.number)
                        ELSE t.error END ORDER BY t.position) FILTER (WHERE t.outcome = 'failed')
    INTO event_projects, event_types, event_runs, event_nodes, event_data, succeeded_ids,
         succeeded_runs, failed_ids, failed_errors
  FROM attempt t;

  IF event_projects IS NOT NULL THEN
    PERFORM orchestration.emit_events(event_projects, event_types, event_runs, event_nodes, event_data);
  END IF;
  IF succeeded_ids IS NOT NULL THEN
    -- Each finished dependency takes one off its dependents' counters. A dependent that
    -- is no longer PENDING (skipped when its run failed while this node's container ran)
    -- has a counter nobody reads (retry_run recounts). Each dependent is looked up by
    -- (run_id, node_key) in a subquery of its own, so the plan is an index probe per
    -- dependent whatever the statistics say about the table.
    SELECT array_agg((SELECT d.id FROM orchestration.workflow_run_nodes d
                      WHERE d.run_id = n.run_id AND d.node_key = dependent))
      INTO released
    FROM orchestration.workflow_run_nodes n, unnest(n.dependents) AS dependent
    WHERE n.id = ANY (succeeded_ids);
    IF released IS NOT NULL THEN
      UPDATE orchestration.workflow_run_nodes d
         SET pending_deps = d.pending_deps - (SELECT count(*) FROM unnest(released) r WHERE r = d.id)
       WHERE d.id = ANY (released);
    END IF;
    FOR i IN 1 .. cardinality(succeeded_runs) LOOP
      PERFORM orchestration.refresh_run(succeeded_runs[i]);
    END LOOP;
  END IF;
  FOR i IN 1 .. coalesce(cardinality(failed_ids), 0) LOOP
    PERFORM orchestration.fail_node(failed_ids[i], failed_errors[i]);
  END LOOP;
END
$$;
COMMENT ON FUNCTION orchestration.record_attempts(bigint[], boolean[], jsonb[], jsonb[], text[], timestamptz[], timestamptz[], bigint, integer[], text[], text[]) IS
  'Internal (scheduler): records attempts of nodes (one agent_runs row each, in array order) and moves each node on: SUCCESS releases its dependents; a failure is retried after exponential backoff while retries remain, else fails the node and the run; a node cancelled or skipped meanwhile keeps only the attempt';

-- Locks up to max_nodes runnable nodes, in dispatch order (level, then id), and returns
-- what the scheduler needs to move each one on: its agent, its template scope, and whether
-- it still needs an approval (the scheduler checks the node's condition first: a node
-- that is skipped never asks anyone). Only containers stay RUNNING between transactions,
-- so only they count against the concurrency limits.
CREATE FUNCTION orchestration.claim_nodes(max_nodes integer, max_running integer,
                                          max_running_per_project integer,
                                          reserved_runs bigint[])
RETURNS TABLE (node_id bigint, run_id bigint, project_id integer, node_key text,
               attempt integer, inputs jsonb, condition jsonb, agent_name text, action text,
               agent_type orchestration.agent_type, rule_function text, registered_by name,
               timeout_seconds integer, scope jsonb, needs_approval boolean,
               capability_id bigint, contract_version text, agent jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is, for the same reasons (see there).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  running_total integer;
  candidate_ids bigint[];
  claimed_ids bigint[];
  started_runs bigint[];
  started_projects integer[];
BEGIN
  -- The limits count containers: RULE nodes run one after another inside the scheduler
  -- and never stay RUNNING, so they are claimed whatever runs.
  SELECT count(*) INTO running_total FROM orchestration.workflow_run_nodes n WHERE n.status = 'RUNNING';

  -- The first runnable nodes in dispatch order (the queue index, read in order and cut
  -- short), then those the limits leave room for: every RULE node, and the containers
  -- while fewer than max_running run in all and max_running_per_project in their project.
  WITH runnable AS (
    SELECT q.id, q.project_id, q.level, coalesce(a.type <> 'RULE', true) AS container
    FROM (SELECT n.id, n.project_id, n.level, n.agent_id
          FROM orchestration.workflow_run_nodes n
          WHERE n.status = 'PENDING' AND n.pending_deps = 0
            AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= clock_timestamp())
          ORDER BY n.level, n.id
          LIMIT max_nodes * 4) q
    LEFT JOIN orchestration.agents a ON a.id = q.agent_id
  ), ranked AS (
    SELECT r.*,
           count(*) FILTER (WHERE r.container) OVER (ORDER BY r.level, r.id) AS container_rank,
           count(*) FILTER (WHERE r.container)
             OVER (PARTITION BY r.project_id ORDER BY r.level, r.id) AS container_rank_in_project
    FROM runnable r
  ), busy AS (
    SELECT n.project_id, count(*) AS running
    FROM orchestration.workflow_run_nodes n WHERE n.status = 'RUNNING' GROUP BY n.project_id
  )
  SELECT array_agg(r.id ORDER BY r.level, r.id) INTO candidate_ids
  FROM (SELECT r.id, r.level FROM ranked r LEFT JOIN busy b ON b.project_id = r.project_id
        WHERE NOT r.container
           OR ((max_running <= 0 OR r.container_rank <= max_running - running_total)
               AND (max_running_per_project <= 0
                    OR r.container_rank_in_project + coalesce(b.running, 0) <= max_running_per_project))
        ORDER BY r.level, r.id LIMIT max_nodes) r;
  IF candidate_ids IS NULL THEN
    RETURN;
  END IF;

  SELECT array_agg(l.id ORDER BY l.level, l.id) INTO claimed_ids
  FROM (SELECT n.id, n.level FROM orchestration.workflow_run_nodes n
        JOIN orchestration.workflow_runs r ON r.id = n.run_id
        WHERE n.id = ANY (candidate_ids) AND n.status = 'PENDING' AND n.pending_deps = 0
          AND r.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL')
          AND NOT r.id = ANY (reserved_runs)
        ORDER BY n.level, n.id
        -- The run row too: whoever changes a run locks its row first (cancel_run, retry_run,
        -- approve, reject do), so no two transactions wait for each other in a circle. A run
        -- someone else holds is skipped for now.
        FOR UPDATE OF n, r SKIP LOCKED) l;
  IF claimed_ids IS NULL THEN
    RETURN;
  END IF;

  WITH started AS (
    UPDATE orchestration.workflow_runs r SET status = 'RUNNING', started_at = clock_timestamp()
    WHERE r.id = ANY (ARRAY(SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (claimed_ids)))
      AND r.status = 'PENDING'
    RETURNING r.id, r.project_id
  )
  SELECT array_agg(s.id ORDER BY s.id), array_agg(s.project_id ORDER BY s.id)
    INTO started_runs, started_projects FROM started s;
  IF started_runs IS NOT NULL THEN
    PERFORM orchestration.emit_events(
              started_projects, array_fill('orchestration.run.started'::text, ARRAY[cardinality(started_runs)]),
              started_runs, array_fill(NULL::text, ARRAY[cardinality(started_runs)]),
              array_fill('{"status": "RUNNING"}'::jsonb, ARRAY[cardinality(started_runs)]));
  END IF;

  RETURN QUERY
    SELECT claimed.id, claimed.run_id, claimed.project_id, claimed.node_key, claimed.attempt,
           claimed.inputs, claimed.condition, a.name, claimed.action, a.type, a.rule_function,
           a.registered_by,
           coalesce(claimed.timeout_seconds, a.timeout_seconds),
           jsonb_build_object(
             'context', r.context,
             'run', jsonb_build_object('id', r.id, 'project_id', r.project_id, 'trigger', r.trigger,
                                       'started_by', r.started_by, 'traceparent', r.traceparent),
             'workflow', jsonb_build_object('id', w.id, 'name', w.name, 'version', r.workflow_version),
             -- The outputs its templates read, each looked up by (run_id, node_key).
             'nodes', coalesce((SELECT jsonb_object_agg(ref, upstream) FILTER (WHERE upstream IS NOT NULL)
                                FROM (SELECT ref, (SELECT jsonb_build_object('output', u.output)
                                                   FROM orchestration.workflow_run_nodes u
                                                   WHERE u.run_id = claimed.run_id AND u.node_key = ref
                                                     AND u.status = 'SUCCESS') AS upstream
                                      FROM unnest(claimed.refs) AS ref) refs), '{}')),
           (claimed.approval_required OR a.risk_level = 'APPROVAL_REQUIRED')
             AND NOT EXISTS (SELECT 1 FROM orchestration.workflow_approvals ap
                             WHERE ap.run_node_id = claimed.id AND ap.status = 'APPROVED'),
           -- The row version identifies the schemas, so the scheduler compiles them
           -- once and again only after update_agent changes them.
           c.id, c.xmin::text,
           -- What a container needs (image, command, limits, secrets); a RULE node needs none.
           CASE WHEN a.type <> 'RULE' THEN orchestration.agent_json(a) END
    FROM orchestration.workflow_run_nodes claimed
    JOIN orchestration.agents a ON a.id = claimed.agent_id
    JOIN orchestration.workflow_runs r ON r.id = claimed.run_id
    JOIN orchestration.workflows w ON w.id = r.workflow_id
    JOIN orchestration.agent_capabilities c ON c.agent_id = a.id AND c.name = claimed.action
    WHERE claimed.id = ANY (claimed_ids)
    ORDER BY claimed.level, claimed.id;
END
$$;
COMMENT ON FUNCTION orchestration.claim_nodes(integer, integer, integer, bigint[]) IS
  'Internal (scheduler): locks runnable nodes (FOR UPDATE SKIP LOCKED) in level order within the concurrency limits, leaving out runs that others are about to lock (reserve_run), and returns each node with its agent, its template scope, whether it still needs an approval, and its capability''s id and row version (for the contract cache)';

CREATE FUNCTION orchestration.request_approval(node_id bigint, approval_timeout_seconds integer,
                                               input jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  requested timestamptz := clock_timestamp();
  approval_id bigint;
BEGIN
  UPDATE orchestration.workflow_run_nodes n SET status = 'WAITING_APPROVAL', resolved_input = input
  WHERE n.id = node_id RETURNING * INTO node;
  INSERT INTO orchestration.workflow_approvals AS ap
    (project_id, workflow_run_id, run_node_id, node_key, requested_at, expires_at)
  VALUES (node.project_id, node.run_id, node.id, node.node_key, requested,
          CASE WHEN approval_timeout_seconds > 0
               THEN requested + make_interval(secs => approval_timeout_seconds) END)
  RETURNING ap.id INTO approval_id;
  PERFORM orchestration.emit_event(node.project_id, 'approval', 'requested', node.run_id,
            node.node_key, jsonb_build_object('approval_id', approval_id, 'status', 'PENDING'));
  PERFORM orchestration.refresh_run(node.run_id);
END
$$;
COMMENT ON FUNCTION orchestration.request_approval(bigint, integer, jsonb) IS
  'Internal (scheduler): puts a claimed node in WAITING_APPROVAL, with the input it will run with, and a PENDING approval that expires after approval_timeout_seconds (0: never)';

CREATE FUNCTION orchestration.start_container_node(node_id bigint, input jsonb, container_name text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  span text;  -- the attempt's traceparent
BEGIN
  span := orchestration.child_traceparent(
    (SELECT r.traceparent FROM orchestration.workflow_runs r
     WHERE r.id = (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = node_id)));
  UPDATE orchestration.workflow_run_nodes n SET
    status = 'RUNNING', resolved_input = input, container_name = start_container_node.container_name,
    attempt_traceparent = span,
    started_at = coalesce(n.started_at, clock_timestamp()), next_attempt_at = NULL
  WHERE n.id = node_id RETURNING * INTO node;
  PERFORM orchestration.emit_event(node.project_id, 'node', 'started', node.run_id, node.node_key,
            jsonb_build_object('status', 'RUNNING', 'attempt', node.attempt + 1, 'container', container_name,
                               'traceparent', span));
  RETURN span;
END
$$;
COMMENT ON FUNCTION orchestration.start_container_node(bigint, jsonb, text) IS
  'Internal (scheduler): a container node is RUNNING, under the container name its attempt will have; returns the attempt''s traceparent (a child span of the run''s trace, also in the node.started event). Committed before the container is created, so that after a crash the node says which container to look for';

CREATE FUNCTION orchestration.requeue_node(node_id bigint, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
BEGIN
  PERFORM orchestration.lock_run_of(node_id);
  UPDATE orchestration.workflow_run_nodes n SET status = 'PENDING', container_name = NULL, attempt_traceparent = NULL,
    next_attempt_at = NULL
  WHERE n.id = node_id AND n.status = 'RUNNING' RETURNING * INTO node;
  IF FOUND THEN
    PERFORM orchestration.emit_event(node.project_id, 'node', 'retrying', node.run_id, node.node_key,
              jsonb_build_object('status', 'PENDING', 'attempt', node.attempt + 1, 'reason', reason));
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.requeue_node(bigint, text) IS
  'Internal (scheduler): a RUNNING container node whose container was never created or started (the scheduler stopped in between) is PENDING again; nothing ran, so no retry is used up';

-- The next moment something becomes due without a wake-up: a retry's backoff ends or an
-- approval expires. The scheduler sleeps until then at most.
CREATE FUNCTION orchestration.next_due_at() RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- PL/pgSQL, not SQL, so that the plan is kept: the scheduler asks after every pass.
  RETURN least((SELECT min(n.next_attempt_at) FROM orchestration.workflow_run_nodes n
                WHERE n.status = 'PENDING' AND n.pending_deps = 0),
               (SELECT min(a.expires_at) FROM orchestration.workflow_approvals a
                WHERE a.status = 'PENDING'));
END
$$;
COMMENT ON FUNCTION orchestration.next_due_at() IS
  'Internal (scheduler): when the earliest retry backoff ends or pending approval expires';

-- ---------------------------------------------------------------------------------------
-- Operator functions on runs.

CREATE FUNCTION orchestration.run_for_write(run_id bigint, required_role name,
                                            OUT run orchestration.workflow_runs, OUT caller name)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM orchestration.reserve_run(run_id);
  SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = run_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'run % does not exist', coalesce(run_id::text, 'NULL') USING ERRCODE = 'undefined_object';
  END IF;
  caller := orchestration.authorize(run.project_id, required_role, object => 'run ' || run_id);
END
$$;
COMMENT ON FUNCTION orchestration.run_for_write(bigint, name) IS
  'Internal: locks a run for cancel_run/retry_run after checking the caller''s role and project; a run of a project the caller lacks is reported as not existing';

CREATE FUNCTION orchestration.cancel_run(run_id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.run_for_write(run_id, 'orchestration_operator');
  message text;
  cancelled orchestration.workflow_run_nodes;
BEGIN
  IF (target.run).status IN ('SUCCESS', 'FAILED', 'CANCELLED') THEN
    RAISE EXCEPTION 'run % has already finished (%)', run_id, (target.run).status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  message := 'cancelled by ' || target.caller || coalesce(': ' || reason, '');
  UPDATE orchestration.workflow_runs r
     SET status = 'CANCELLED', finished_at = clock_timestamp(), error = message
   WHERE r.id = run_id;
  -- Running containers are stopped by the executor, which then records them CANCELLED.
  FOR cancelled IN
    UPDATE orchestration.workflow_run_nodes n
       SET status = 'CANCELLED', error = message, finished_at = clock_timestamp()
     WHERE n.run_id = cancel_run.run_id AND n.status IN ('PENDING', 'WAITING_APPROVAL')
    RETURNING *
  LOOP
    PERFORM orchestration.emit_event(cancelled.project_id, 'node', 'cancelled', run_id,
              cancelled.node_key, jsonb_build_object('status', 'CANCELLED'));
  END LOOP;
  UPDATE orchestration.workflow_approvals a
     SET status = 'REJECTED', responded_at = now(), notes = 'run ' || message
   WHERE a.workflow_run_id = run_id AND a.status = 'PENDING';
  PERFORM orchestration.emit_event((target.run).project_id, 'run', 'cancelled', run_id, NULL,
            jsonb_build_object('status', 'CANCELLED', 'error', message));
  PERFORM orchestration.wake_scheduler();
END
$$;
COMMENT ON FUNCTION orchestration.cancel_run(bigint, text) IS
  'Cancels a live run: no node starts any more, running containers are stopped, waiting approvals are closed, and the run ends CANCELLED with the reason. Requires orchestration_operator and the project';

CREATE FUNCTION orchestration.retry_run(run_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.run_for_write(run_id, 'orchestration_operator');
BEGIN
  IF (target.run).status <> 'FAILED' THEN
    RAISE EXCEPTION 'run % is %; only FAILED runs can be retried', run_id, (target.run).status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- Failed nodes, and the nodes skipped because the run failed, run again; nodes that
  -- succeeded (or were skipped by their condition) stay as they are.
  UPDATE orchestration.workflow_run_nodes n SET
    status = 'PENDING', error = NULL, skip_reason = NULL, next_attempt_at = NULL,
    finished_at = NULL, output = NULL
  WHERE n.run_id = retry_run.run_id
    AND (n.status = 'FAILED' OR (n.status = 'SKIPPED' AND n.skip_reason = 'run failed'));
  UPDATE orchestration.workflow_run_nodes n SET pending_deps = (
    SELECT count(*) FROM orchestration.workflow_run_nodes d
    WHERE d.run_id = n.run_id AND d.node_key = ANY (n.depends_on)
      AND NOT (d.status = 'SUCCESS' OR (d.status = 'SKIPPED' AND n.run_if_skipped)))
  WHERE n.run_id = retry_run.run_id AND n.status = 'PENDING';
  UPDATE orchestration.workflow_runs r SET status = 'RUNNING', finished_at = NULL, error = NULL
  WHERE r.id = run_id;
  PERFORM orchestration.emit_event((target.run).project_id, 'run', 'retried', run_id, NULL,
            jsonb_build_object('status', 'RUNNING', 'retried_by', target.caller));
  PERFORM orchestration.wake_scheduler();
END
$$;
COMMENT ON FUNCTION orchestration.retry_run(bigint) IS
  'Continues a FAILED run from its failed nodes: they (and the nodes skipped because of the failure) run again; successful nodes are not run again. Requires orchestration_operator and the project';

CREATE FUNCTION orchestration.run_json(run_id bigint) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
           'id', r.id, 'project_id', r.project_id, 'workflow', w.name,
           'workflow_version', r.workflow_version, 'status', r.status, 'error', r.error,
           'trigger', r.trigger, 'started_by', r.started_by, 'traceparent', r.traceparent,
           'created_at', r.created_at, 'started_at', r.started_at, 'finished_at', r.finished_at,
           'duration_ms', (extract(epoch FROM r.finished_at - r.started_at) * 1000)::bigint,
           'nodes', coalesce((
             SELECT jsonb_agg(jsonb_build_object(
                      'id', n.node_key, 'status', n.status, 'attempt', n.attempt,
                      'output', n.output, 'error', n.error, 'skip_reason', n.skip_reason,
                      'started_at', n.started_at, 'finished_at', n.finished_at,
                      'duration_ms', (extract(epoch FROM n.finished_at - n.started_at) * 1000)::bigint)
                    ORDER BY n.level, n.node_key)
             FROM orchestration.workflow_run_nodes n WHERE n.run_id = r.id), '[]'))
  FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
  WHERE r.id = run_json.run_id
$$;
COMMENT ON FUNCTION orchestration.run_json(bigint) IS
  'A run''s summary as JSON: status, error, timings, and each node''s status, attempt, output, error and timings';

CREATE FUNCTION orchestration.wait_for_run(run_id bigint, timeout interval DEFAULT '60 seconds')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + timeout;
  current_status orchestration.run_status;
  run_xmin xid;
  pause float8 := 0.002;
BEGIN
  SELECT r.status, r.xmin INTO current_status, run_xmin FROM orchestration.workflow_runs r WHERE r.id = run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'run % does not exist', coalesce(run_id::text, 'NULL') USING ERRCODE = 'undefined_object';
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'wait_for_run needs READ COMMITTED; in % isolation it would never see the run change',
                    upper(current_setting('transaction_isolation'))
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF run_xmin::text = pg_current_xact_id_if_assigned()::text THEN
    RAISE EXCEPTION 'run % was started in this transaction; the scheduler sees it only after COMMIT', run_id
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Commit first, then call wait_for_run in a new transaction.';
  END IF;
  LOOP
    SELECT r.status INTO current_status FROM orchestration.workflow_runs r WHERE r.id = run_id;
    IF current_status IN ('SUCCESS', 'FAILED', 'CANCELLED', 'WAITING_APPROVAL') THEN
      RETURN orchestration.run_json(run_id);
    END IF;
    IF clock_timestamp() >= deadline THEN
      RETURN orchestration.run_json(run_id) || '{"timed_out": true}';
    END IF;
    PERFORM pg_sleep(least(pause, extract(epoch FROM deadline - clock_timestamp())));
    pause := least(pause * 2, 0.05);
  END LOOP;
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_run(bigint, interval) IS
  'Blocks until the run is SUCCESS, FAILED, CANCELLED or WAITING_APPROVAL, or the timeout passes, and returns its summary (as run_json; "timed_out": true when the timeout passed). Needs READ COMMITTED and a committed run';
-- Approvals: a node whose agent is APPROVAL_REQUIRED, or that sets approval_required,
-- waits in WAITING_APPROVAL with a PENDING approval until an approver answers.

CREATE FUNCTION orchestration.answer_approval(approval_id bigint,
                                              answer orchestration.approval_status, notes text)
RETURNS orchestration.workflow_approvals
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  approval orchestration.workflow_approvals;
  caller name;
  run orchestration.workflow_runs;
BEGIN
  -- The run's row first, then the approval (see the lock order in 70_runs.sql).
  SELECT * INTO approval FROM orchestration.workflow_approvals a WHERE a.id = approval_id;
  IF FOUND THEN
    PERFORM orchestration.reserve_run(approval.workflow_run_id);
    PERFORM 1 FROM orchestration.workflow_runs r WHERE r.id = approval.workflow_run_id FOR UPDATE;
    SELECT * INTO approval FROM orchestration.workflow_approvals a WHERE a.id = approval_id FOR UPDATE;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'approval % does not exist', coalesce(approval_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  caller := orchestration.authorize(approval.project_id, 'orchestration_approver',
                                    object => 'approval ' || approval_id);
  IF approval.status <> 'PENDING' THEN
    RAISE EXCEPTION 'approval % was already answered: %', approval_id,
                    approval.status || coalesce(' by ' || approval.responded_by, '')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = coalesce('Notes: ' || approval.notes, '');
  END IF;
  SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = approval.workflow_run_id;
  IF coalesce(current_setting('orchestration.approval_four_eyes', true), 'off') IN ('on', 'true', '1')
     AND run.started_by = caller THEN
    RAISE EXCEPTION 'role "%" started run % and so cannot answer its approvals', caller, run.id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'orchestration.approval_four_eyes is on: another approver must answer.';
  END IF;
  UPDATE orchestration.workflow_approvals a
     SET status = answer, responded_at = now(), responded_by = caller, notes = answer_approval.notes
   WHERE a.id = approval_id
  RETURNING * INTO approval;
  PERFORM orchestration.emit_event(approval.project_id, 'approval', lower(answer::text),
            approval.workflow_run_id, approval.node_key,
            jsonb_build_object('approval_id', approval_id, 'status', answer,
                               'responded_by', caller, 'notes', notes));
  RETURN approval;
END
$$;
COMMENT ON FUNCTION orchestration.answer_approval(bigint, orchestration.approval_status, text) IS
  'Internal: records an answer to a PENDING approval (and its event) after checking the caller is an approver of the project and, with orchestration.approval_four_eyes, not the role that started the run';

CREATE FUNCTION orchestration.approve(approval_id bigint, notes text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  approval orchestration.workflow_approvals := orchestration.answer_approval(approval_id, 'APPROVED', notes);
BEGIN
  UPDATE orchestration.workflow_run_nodes n SET status = 'PENDING'
   WHERE n.id = approval.run_node_id AND n.status = 'WAITING_APPROVAL';
  PERFORM orchestration.refresh_run(approval.workflow_run_id);
  PERFORM orchestration.wake_scheduler();
END
$$;
COMMENT ON FUNCTION orchestration.approve(bigint, text) IS
  'Approves a PENDING approval: its node runs. Records who (the calling role) and when. Requires orchestration_approver and the project; with orchestration.approval_four_eyes = on, the role that started the run cannot approve it';

CREATE FUNCTION orchestration.reject(approval_id bigint, notes text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  approval orchestration.workflow_approvals := orchestration.answer_approval(approval_id, 'REJECTED', notes);
BEGIN
  PERFORM orchestration.fail_node(approval.run_node_id,
            format('rejected by %s%s', approval.responded_by, coalesce(': ' || notes, '')));
END
$$;
COMMENT ON FUNCTION orchestration.reject(bigint, text) IS
  'Rejects a PENDING approval: its node fails (no retries), the run fails and what depends on it is skipped. Requires orchestration_approver and the project';

CREATE FUNCTION orchestration.expire_approvals() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  due orchestration.workflow_approvals;
  expired orchestration.workflow_approvals;
  n integer := 0;
BEGIN
  FOR due IN
    SELECT * FROM orchestration.workflow_approvals a
    WHERE a.status = 'PENDING' AND a.expires_at <= clock_timestamp()
    ORDER BY a.expires_at
  LOOP
    -- The run's row first (see the lock order in 70_runs.sql); a run someone else is
    -- changing right now is left for the next pass.
    PERFORM 1 FROM orchestration.workflow_runs r WHERE r.id = due.workflow_run_id
      FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    UPDATE orchestration.workflow_approvals a
       SET status = 'REJECTED', responded_at = now(),
           notes = format('expired: no answer within %s', a.expires_at - a.requested_at)
     WHERE a.id = due.id AND a.status = 'PENDING'
    RETURNING * INTO expired;
    CONTINUE WHEN NOT FOUND;
    PERFORM orchestration.emit_event(expired.project_id, 'approval', 'expired',
              expired.workflow_run_id, expired.node_key,
              jsonb_build_object('approval_id', expired.id, 'status', 'REJECTED', 'notes', expired.notes));
    PERFORM orchestration.fail_node(expired.run_node_id, 'approval ' || expired.id || ' ' || expired.notes);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION orchestration.expire_approvals() IS
  'Internal (scheduler): rejects PENDING approvals past their expires_at (orchestration.approval_timeout after the request) and fails their nodes';
-- Views for psql. security_invoker makes row-level security apply to the caller, so a
-- role sees only its projects' rows here too.

CREATE VIEW orchestration.run_summary WITH (security_invoker = true) AS
SELECT r.id AS run_id, r.project_id, w.name AS workflow, r.status,
       count(n.id) AS nodes,
       count(n.id) FILTER (WHERE n.status = 'SUCCESS') AS succeeded,
       count(n.id) FILTER (WHERE n.status = 'FAILED') AS failed,
       count(n.id) FILTER (WHERE n.status = 'RUNNING') AS running,
       count(n.id) FILTER (WHERE n.status = 'PENDING') AS pending,
       count(n.id) FILTER (WHERE n.status = 'WAITING_APPROVAL') AS waiting,
       count(n.id) FILTER (WHERE n.status = 'SKIPPED') AS skipped,
       count(n.id) FILTER (WHERE n.status = 'CANCELLED') AS cancelled,
       round(100.0 * count(n.id) FILTER (WHERE n.status IN ('SUCCESS', 'FAILED', 'SKIPPED', 'CANCELLED'))
             / greatest(count(n.id), 1)) AS percent_done,
       r.trigger, r.started_by, r.created_at, r.started_at, r.finished_at,
       coalesce(r.finished_at, now()) - coalesce(r.started_at, r.created_at) AS elapsed,
       r.error
FROM orchestration.workflow_runs r
JOIN orchestration.workflows w ON w.id = r.workflow_id
LEFT JOIN orchestration.workflow_run_nodes n ON n.run_id = r.id
GROUP BY r.id, w.name;
COMMENT ON VIEW orchestration.run_summary IS
  'One row per run: workflow, status, how many nodes are in each status, percent done, timings and the error. Filter it: WHERE status = ''RUNNING'' or ORDER BY run_id DESC LIMIT 20';

CREATE VIEW orchestration.node_runs WITH (security_invoker = true) AS
SELECT n.run_id, n.project_id, w.name AS workflow, n.node_key AS node, a.name AS agent, n.action,
       n.status, n.attempt, n.level, n.started_at, n.finished_at,
       n.finished_at - n.started_at AS duration, n.next_attempt_at,
       coalesce(n.error, n.skip_reason) AS error,
       last.exit_code, last.log_tail
FROM orchestration.workflow_run_nodes n
JOIN orchestration.workflow_runs r ON r.id = n.run_id
JOIN orchestration.workflows w ON w.id = r.workflow_id
LEFT JOIN orchestration.agents a ON a.id = n.agent_id
LEFT JOIN LATERAL (SELECT ar.exit_code, ar.log_tail FROM orchestration.agent_runs ar
                   WHERE ar.run_node_id = n.id ORDER BY ar.attempt DESC LIMIT 1) last ON true;
COMMENT ON VIEW orchestration.node_runs IS
  'One row per node per run: status, attempt, timings, the error (or why it was skipped), and the last attempt''s exit code and log tail. ORDER BY run_id, level, node';

CREATE VIEW orchestration.pending_approvals WITH (security_invoker = true) AS
SELECT ap.id AS approval_id, ap.project_id, ap.workflow_run_id AS run_id, w.name AS workflow,
       ap.node_key AS node, a.name AS agent, n.action, r.started_by,
       ap.requested_at, ap.expires_at, now() - ap.requested_at AS waiting,
       n.resolved_input AS input
FROM orchestration.workflow_approvals ap
JOIN orchestration.workflow_run_nodes n ON n.id = ap.run_node_id
JOIN orchestration.workflow_runs r ON r.id = ap.workflow_run_id
JOIN orchestration.workflows w ON w.id = r.workflow_id
LEFT JOIN orchestration.agents a ON a.id = n.agent_id
WHERE ap.status = 'PENDING';
COMMENT ON VIEW orchestration.pending_approvals IS
  'Approvals waiting for an answer, with the input the node will run with. Answer with orchestration.approve(approval_id) or orchestration.reject(approval_id)';

GRANT SELECT ON orchestration.run_summary, orchestration.node_runs, orchestration.pending_approvals
  TO orchestration_admin, orchestration_operator, orchestration_approver;
-- The DAG as a picture: Mermaid (paste into any Markdown viewer) or Graphviz DOT
-- (dot -Tpng). Run graphs colour each node by its status.

CREATE FUNCTION orchestration.render_graph(title text, nodes jsonb, format text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  colours CONSTANT jsonb := '{"PENDING": "#eeeeee", "RUNNING": "#bbdefb", "SUCCESS": "#c8e6c9",
                              "FAILED": "#ffcdd2", "WAITING_APPROVAL": "#fff9c4", "SKIPPED": "#e0e0e0",
                              "CANCELLED": "#d7ccc8"}';
  n jsonb;
  dep text;
  ids jsonb := '{}';  -- node key -> n<i>: node keys are free text, graph ids must not be
  i integer := 0;
  label text;
  out text;
  status text;
BEGIN
  IF format IS NULL OR format NOT IN ('mermaid', 'dot') THEN
    RAISE EXCEPTION 'unknown graph format "%"', format USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Use ''mermaid'' or ''dot''.';
  END IF;
  FOR n IN SELECT value FROM jsonb_array_elements(nodes) LOOP
    i := i + 1;
    ids := ids || jsonb_build_object(n->>'key', 'n' || i);
  END LOOP;
  IF format = 'mermaid' THEN
    out := '---' || E'\n' || 'title: ' || replace(title, E'\n', ' ') || E'\n' || '---' || E'\n' || 'flowchart TD' || E'\n';
  ELSE
    out := 'digraph "' || replace(replace(title, '\', '\\'), '"', '\"') || '" {' || E'\n'
        || '  rankdir=TB;' || E'\n' || '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];' || E'\n';
  END IF;
  FOR n IN SELECT value FROM jsonb_array_elements(nodes) LOOP
    status := n->>'status';
    label := (n->>'key') || E'\n' || (n->>'label') || coalesce(E'\n' || status, '');
    IF format = 'mermaid' THEN
      out := out || '  ' || (ids->>(n->>'key')) || '["' || replace(replace(label, '"', '#quot;'), E'\n', '<br/>') || '"]' || E'\n';
    ELSE
      out := out || '  ' || (ids->>(n->>'key')) || ' [label="' || replace(replace(replace(label, '\', '\\'), '"', '\"'), E'\n', '\n') || '"'
          || coalesce(', fillcolor="' || (colours->>status) || '"', '')
          || CASE WHEN status = 'SKIPPED' THEN ', style="rounded,filled,dashed"' ELSE '' END || '];' || E'\n';
    END IF;
  END LOOP;
  FOR n IN SELECT value FROM jsonb_array_elements(nodes) LOOP
    FOR dep IN SELECT jsonb_array_elements_text(n->'depends_on') LOOP
      out := out || '  ' || (ids->>dep) || ' --> ' || (ids->>(n->>'key')) || E'\n';
    END LOOP;
  END LOOP;
  IF format = 'mermaid' THEN
    FOR status IN SELECT DISTINCT value->>'status' FROM jsonb_array_elements(nodes) WHERE value->>'status' IS NOT NULL LOOP
      out := out || '  classDef ' || status || ' fill:' || (colours->>status) || E'\n'
          || '  class ' || (SELECT string_agg(ids->>(value->>'key'), ',') FROM jsonb_array_elements(nodes) WHERE value->>'status' = status)
          || ' ' || status || E'\n';
    END LOOP;
  ELSE
    out := replace(out, ' --> ', ' -> ') || '}' || E'\n';
  END IF;
  RETURN out;
END
$$;
COMMENT ON FUNCTION orchestration.render_graph(text, jsonb, text) IS
  'Internal: draws nodes ([{key, label, status, depends_on}]) as Mermaid or Graphviz DOT';

CREATE FUNCTION orchestration.workflow_graph(workflow_id bigint, format text DEFAULT 'mermaid') RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  title text;
BEGIN
  -- Row-level security applies: a workflow of another project does not exist here.
  SELECT w.name || ' (workflow ' || w.id || ', v' || w.version || ')' INTO title
  FROM orchestration.workflows w WHERE w.id = workflow_graph.workflow_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'workflow % does not exist', coalesce(workflow_id::text, 'NULL') USING ERRCODE = 'undefined_object';
  END IF;
  RETURN orchestration.render_graph(title, (
    SELECT coalesce(jsonb_agg(jsonb_build_object('key', n.node_key, 'label', a.name || '.' || n.action,
                                                 'depends_on', to_jsonb(n.depends_on)) ORDER BY n.level, n.node_key), '[]')
    FROM orchestration.workflow_nodes n JOIN orchestration.agents a ON a.id = n.agent_id
    WHERE n.workflow_id = workflow_graph.workflow_id), format);
END
$$;
COMMENT ON FUNCTION orchestration.workflow_graph(bigint, text) IS
  'A workflow''s DAG as Mermaid (format ''mermaid'', the default: paste into a Markdown viewer) or Graphviz DOT (''dot'': dot -Tpng); each node shows its id and agent.action';

CREATE FUNCTION orchestration.run_graph(run_id bigint, format text DEFAULT 'mermaid') RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  title text;
BEGIN
  SELECT w.name || ' (run ' || r.id || ', ' || r.status || ')' INTO title
  FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
  WHERE r.id = run_graph.run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'run % does not exist', coalesce(run_id::text, 'NULL') USING ERRCODE = 'undefined_object';
  END IF;
  RETURN orchestration.render_graph(title, (
    SELECT coalesce(jsonb_agg(jsonb_build_object('key', n.node_key, 'label', coalesce(a.name, '?') || '.' || n.action,
                                                 'status', n.status, 'depends_on', to_jsonb(n.depends_on))
                              ORDER BY n.level, n.node_key), '[]')
    FROM orchestration.workflow_run_nodes n LEFT JOIN orchestration.agents a ON a.id = n.agent_id
    WHERE n.run_id = run_graph.run_id), format);
END
$$;
COMMENT ON FUNCTION orchestration.run_graph(bigint, text) IS
  'A run''s DAG as Mermaid (the default) or Graphviz DOT, each node coloured by its status (green SUCCESS, red FAILED, blue RUNNING, yellow WAITING_APPROVAL, grey PENDING, dashed SKIPPED)';
-- Metrics: orchestration.metric_samples (a view, for psql) and orchestration.metrics()
-- (the same numbers in the Prometheus text exposition format, for a scraper). Both read
-- through row-level security: a role sees its projects' numbers.

CREATE VIEW orchestration.metric_samples WITH (security_invoker = true) AS
WITH buckets(le) AS (VALUES (0.01), (0.05), (0.1), (0.5), (1), (5), (30), (120), (600)),
durations AS (
  SELECT n.project_id, extract(epoch FROM n.finished_at - n.started_at)::float8 AS seconds
  FROM orchestration.workflow_run_nodes n
  WHERE n.finished_at IS NOT NULL AND n.started_at IS NOT NULL)
SELECT 'orchestration_runs' AS metric, jsonb_build_object('project', r.project_id::text, 'status', r.status::text) AS labels,
       count(*)::float8 AS value
FROM orchestration.workflow_runs r GROUP BY r.project_id, r.status
UNION ALL
SELECT 'orchestration_nodes', jsonb_build_object('project', n.project_id::text, 'status', n.status::text), count(*)
FROM orchestration.workflow_run_nodes n GROUP BY n.project_id, n.status
UNION ALL
SELECT 'orchestration_node_duration_seconds_bucket', jsonb_build_object('project', d.project_id::text, 'le', b.le::text),
       count(*) FILTER (WHERE d.seconds <= b.le)
FROM durations d CROSS JOIN buckets b GROUP BY d.project_id, b.le
UNION ALL
SELECT 'orchestration_node_duration_seconds_bucket', jsonb_build_object('project', d.project_id::text, 'le', '+Inf'), count(*)
FROM durations d GROUP BY d.project_id
UNION ALL
SELECT 'orchestration_node_duration_seconds_sum', jsonb_build_object('project', d.project_id::text), sum(d.seconds)
FROM durations d GROUP BY d.project_id
UNION ALL
SELECT 'orchestration_node_duration_seconds_count', jsonb_build_object('project', d.project_id::text), count(*)
FROM durations d GROUP BY d.project_id
UNION ALL
SELECT 'orchestration_queue_depth', '{}', count(*)
FROM orchestration.workflow_run_nodes n JOIN orchestration.workflow_runs r ON r.id = n.run_id
WHERE n.status = 'PENDING' AND n.pending_deps = 0 AND r.status IN ('PENDING', 'RUNNING')
UNION ALL
SELECT 'orchestration_running_containers', '{}', count(*)
FROM orchestration.workflow_run_nodes n WHERE n.status = 'RUNNING' AND n.container_name IS NOT NULL
UNION ALL
SELECT 'orchestration_pending_approvals', '{}', count(*)
FROM orchestration.workflow_approvals a WHERE a.status = 'PENDING'
UNION ALL
SELECT 'orchestration_outbox_backlog', '{}', count(*)
FROM orchestration.events e WHERE e.published_at IS NULL
UNION ALL
SELECT 'orchestration_relay_lag_seconds', '{}',
       coalesce(extract(epoch FROM now() - min(e.created_at)), 0)::float8
FROM orchestration.events e WHERE e.published_at IS NULL;
COMMENT ON VIEW orchestration.metric_samples IS
  'Every metric orchestration.metrics() exports, one row per sample (metric, labels, value): runs and nodes by project and status, node duration histogram, queue depth (runnable nodes), running containers, pending approvals, outbox backlog and relay lag (age of the oldest unpublished event)';

CREATE FUNCTION orchestration.metrics() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH families(family, type, help, ord) AS (VALUES
    ('orchestration_runs', 'gauge', 'Workflow runs by project and status.', 1),
    ('orchestration_nodes', 'gauge', 'Run nodes by project and status.', 2),
    ('orchestration_node_duration_seconds', 'histogram', 'Time from a node''s start to its end, finished nodes.', 3),
    ('orchestration_queue_depth', 'gauge', 'Nodes runnable now, waiting for the scheduler.', 4),
    ('orchestration_running_containers', 'gauge', 'Container nodes running.', 5),
    ('orchestration_pending_approvals', 'gauge', 'Approvals waiting for an answer.', 6),
    ('orchestration_outbox_backlog', 'gauge', 'Events not yet published to NATS.', 7),
    ('orchestration_relay_lag_seconds', 'gauge', 'Age of the oldest event not yet published to NATS (0: none).', 8)),
  lines AS (
    SELECT f.ord, 0 AS sub, '# HELP ' || f.family || ' ' || f.help || E'\n# TYPE ' || f.family || ' ' || f.type AS line,
           NULL::text AS project, NULL::text AS metric, NULL::float8 AS le, NULL::text AS status
    FROM families f
    UNION ALL
    SELECT f.ord, 1, s.metric
           || coalesce('{' || (SELECT string_agg(key || '="' || replace(replace(value, '\', '\\'), '"', '\"') || '"', ','
                                                 ORDER BY key = 'le', key)
                               FROM jsonb_each_text(s.labels)) || '}', '')
           || ' ' || CASE WHEN s.value = 'Infinity' THEN '+Inf' ELSE s.value::text END,
           s.labels->>'project', s.metric, (s.labels->>'le')::float8, s.labels->>'status'
    FROM orchestration.metric_samples s
    JOIN families f ON s.metric = f.family OR s.metric LIKE f.family || '\_%' AND f.type = 'histogram')
  -- Per family: HELP and TYPE, then by project; a histogram's buckets in increasing le, then _count and _sum.
  SELECT string_agg(line, E'\n' ORDER BY ord, sub, project, metric, le, status) || E'\n' FROM lines
$$;
COMMENT ON FUNCTION orchestration.metrics() IS
  'The metrics of orchestration.metric_samples in the Prometheus text exposition format (version 0.0.4), for postgres_exporter''s custom queries or any scraper; sees the caller''s projects (a superuser or a role granted every project sees all)';

GRANT SELECT ON orchestration.metric_samples TO orchestration_admin, orchestration_operator, orchestration_approver;
-- Spans for OpenTelemetry. While orchestration.otlp_endpoint is set, every finished run and
-- every node attempt leaves a span (OTLP JSON) in span_queue, in the transaction that
-- finished it; the relay worker sends them to the endpoint and deletes what was accepted.
-- A run's span is a child of its caller's (context.traceparent), an attempt's a child of
-- its run's: the same ids the events and the containers' TRACEPARENT carry.

CREATE FUNCTION orchestration.tracing_enabled() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(current_setting('orchestration.otlp_endpoint', true), '') <> '' $$;
COMMENT ON FUNCTION orchestration.tracing_enabled() IS
  'Internal: whether orchestration.otlp_endpoint is set, so that spans are kept for the relay to send';

-- An OTLP/JSON span (opentelemetry-proto, JSON encoding): ids in hex, times in nanoseconds
-- since the epoch as strings, status 1 (OK) or 2 (ERROR).
CREATE FUNCTION orchestration.otlp_span(traceparent text, parent text, name text,
                                        started_at timestamptz, finished_at timestamptz,
                                        failed boolean, message text, attributes jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'traceId', split_part(traceparent, '-', 2),
           'spanId', split_part(traceparent, '-', 3),
           -- The parent only when it is in the same trace (a caller's invalid traceparent
           -- started a new trace: the run is its root).
           'parentSpanId', CASE WHEN split_part(parent, '-', 2) = split_part(traceparent, '-', 2)
                                     AND split_part(parent, '-', 3) <> split_part(traceparent, '-', 3)
                                THEN split_part(parent, '-', 3) END,
           'name', name,
           'kind', 1,
           'startTimeUnixNano', ((extract(epoch FROM started_at) * 1000000)::bigint * 1000)::text,
           'endTimeUnixNano', ((extract(epoch FROM coalesce(finished_at, started_at)) * 1000000)::bigint * 1000)::text,
           'attributes', (SELECT coalesce(jsonb_agg(jsonb_build_object('key', a.key, 'value',
                                   CASE jsonb_typeof(a.value) WHEN 'number' THEN jsonb_build_object('intValue', a.value::text)
                                        ELSE jsonb_build_object('stringValue', a.value #>> '{}') END) ORDER BY a.key), '[]')
                          FROM jsonb_each(jsonb_strip_nulls(attributes)) a),
           'status', jsonb_build_object('code', CASE WHEN failed THEN 2 ELSE 1 END,
                                        'message', CASE WHEN failed THEN message END)))
$$;
COMMENT ON FUNCTION orchestration.otlp_span(text, text, text, timestamptz, timestamptz, boolean, text, jsonb) IS
  'Internal: one span in the OTLP/JSON encoding, from a W3C traceparent (its trace and span id), its parent''s, a name, start and end, whether it failed (and why) and attributes (a flat JSON object)';

-- Attempts are inserted a claim round at a time: one statement-level trigger per insert.
CREATE FUNCTION orchestration.queue_attempt_spans() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF orchestration.tracing_enabled() THEN
    INSERT INTO orchestration.span_queue (span)
    SELECT orchestration.otlp_span(
             a.traceparent, r.traceparent, a.agent_name || '.' || n.action, a.started_at, a.finished_at,
             a.status <> 'SUCCESS', a.error,
             jsonb_build_object('orchestration.project_id', a.project_id, 'orchestration.run_id', a.workflow_run_id,
                                'orchestration.node', n.node_key, 'orchestration.attempt', a.attempt,
                                'orchestration.agent', a.agent_name, 'orchestration.action', n.action,
                                'container.id', a.container_id, 'process.exit.code', a.exit_code))
    FROM attempts a
    JOIN orchestration.workflow_run_nodes n ON n.id = a.run_node_id
    JOIN orchestration.workflow_runs r ON r.id = a.workflow_run_id
    WHERE a.traceparent IS NOT NULL
    ORDER BY a.id;
    PERFORM orchestration.wake_relay();
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.queue_attempt_spans() IS
  'Internal (trigger on agent_runs): while orchestration.otlp_endpoint is set, queues a span per new attempt, a child of its run''s span';
CREATE TRIGGER attempt_spans AFTER INSERT ON orchestration.agent_runs
  REFERENCING NEW TABLE AS attempts FOR EACH STATEMENT
  EXECUTE FUNCTION orchestration.queue_attempt_spans();

CREATE FUNCTION orchestration.queue_run_span() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF orchestration.tracing_enabled() THEN
    INSERT INTO orchestration.span_queue (span)
    SELECT orchestration.otlp_span(
             NEW.traceparent, NEW.context->>'traceparent', 'run ' || w.name,
             coalesce(NEW.started_at, NEW.created_at), coalesce(NEW.finished_at, clock_timestamp()),
             NEW.status <> 'SUCCESS', coalesce(NEW.error, 'run ' || lower(NEW.status::text)),
             jsonb_build_object('orchestration.project_id', NEW.project_id, 'orchestration.run_id', NEW.id,
                                'orchestration.workflow', w.name, 'orchestration.workflow_version', NEW.workflow_version,
                                'orchestration.trigger', NEW.trigger, 'orchestration.status', NEW.status,
                                'orchestration.started_by', NEW.started_by))
    FROM orchestration.workflows w WHERE w.id = NEW.workflow_id;
    PERFORM orchestration.wake_relay();
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.queue_run_span() IS
  'Internal (trigger on workflow_runs): while orchestration.otlp_endpoint is set, queues the span of a run that has just ended (SUCCESS, FAILED or CANCELLED), a child of its caller''s span';
CREATE TRIGGER run_spans AFTER UPDATE OF status ON orchestration.workflow_runs
  FOR EACH ROW WHEN (NEW.status IN ('SUCCESS', 'FAILED', 'CANCELLED') AND OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION orchestration.queue_run_span();

-- Only the extension's owner (the workers, the API's SECURITY DEFINER functions) reads or
-- writes the queue: no grants, and row-level security with no policy for anyone else.
ALTER TABLE orchestration.span_queue ENABLE ROW LEVEL SECURITY;

-- The relay's side.
CREATE FUNCTION orchestration.spans_to_send(max_spans integer) RETURNS TABLE (id bigint, span text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT q.id, q.span::text FROM orchestration.span_queue q ORDER BY q.id LIMIT max_spans
$$;
COMMENT ON FUNCTION orchestration.spans_to_send(integer) IS
  'Internal (relay): the oldest queued spans, as OTLP JSON text';

CREATE FUNCTION orchestration.spans_sent(span_ids bigint[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM orchestration.span_queue q WHERE q.id = ANY (span_ids) $$;
COMMENT ON FUNCTION orchestration.spans_sent(bigint[]) IS
  'Internal (relay): forgets spans the OTLP endpoint accepted';
-- Who may call what. Functions are executable by PUBLIC unless revoked; start from
-- nothing and grant each function to the roles that need it. The internal helpers are
-- called only from SECURITY DEFINER functions, which run as the extension owner.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA orchestration FROM PUBLIC;

-- Reading: every orchestration role (row-level security limits what each one sees).
GRANT EXECUTE ON FUNCTION
  orchestration.json_schema_valid(jsonb, jsonb),
  orchestration.json_schema_violations(jsonb, jsonb),
  orchestration.json_schema_errors(jsonb, jsonb),
  orchestration.normalize_agent_spec(jsonb),
  orchestration.normalize_workflow_spec(jsonb),
  orchestration.validate_name(text, text),
  orchestration.visible_projects(),
  orchestration.calling_role(),
  orchestration.agent_json(orchestration.agents),
  orchestration.get_agent(bigint),
  orchestration.list_agents(integer),
  orchestration.workflow_levels(bigint),
  orchestration.workflow_json(bigint),
  orchestration.get_workflow(bigint),
  orchestration.run_json(bigint),
  orchestration.wait_for_run(bigint, interval),
  orchestration.render_graph(text, jsonb, text),
  orchestration.workflow_graph(bigint, text),
  orchestration.run_graph(bigint, text),
  orchestration.metrics()
TO orchestration_admin, orchestration_operator, orchestration_approver;

-- Running: operators (and admins, who are operators too).
GRANT EXECUTE ON FUNCTION
  orchestration.start_workflow(integer, text, jsonb),
  orchestration.start_workflow_trigger(),
  orchestration.cancel_run(bigint, text),
  orchestration.retry_run(bigint)
TO orchestration_operator;

-- Answering approvals.
GRANT EXECUTE ON FUNCTION
  orchestration.approve(bigint, text),
  orchestration.reject(bigint, text)
TO orchestration_approver;

-- Defining: admins.
GRANT EXECUTE ON FUNCTION
  orchestration.grant_project(name, integer),
  orchestration.revoke_project(name, integer),
  orchestration.register_agent(integer, jsonb),
  orchestration.update_agent(bigint, jsonb),
  orchestration.delete_agent(bigint),
  orchestration.set_secret(integer, text, text),
  orchestration.delete_secret(integer, text),
  orchestration.list_secrets(integer),
  orchestration.create_workflow(integer, jsonb),
  orchestration.update_workflow(bigint, jsonb),
  orchestration.archive_workflow(bigint)
TO orchestration_admin;
