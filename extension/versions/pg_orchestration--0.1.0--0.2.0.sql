-- pg_orchestration 0.1.0 -> 0.2.0. Each change of extension/*.sql since 0.1.0 (whose
-- install script is kept as it was in extension/versions/pg_orchestration--0.1.0.sql).
-- test/integration/upgrade.sh proves that installing 0.1.0 and running this gives the
-- catalog of a fresh 0.2.0 install. A function changed several times before 0.2.0 was
-- released is written once, in its 0.2.0 form (where its first change was, or, if it was
-- dropped and created again, where it was created again).

\echo Use "ALTER EXTENSION pg_orchestration UPDATE" to load this file. \quit

-- Containment (issue 13).
-- A RULE agent runs as the role that last set its function (runs_as), no longer as the
-- role that registered it; existing agents keep running as their registrant until then.
ALTER TABLE orchestration.agents ADD COLUMN runs_as name;
UPDATE orchestration.agents SET runs_as = registered_by WHERE type = 'RULE';
ALTER TABLE orchestration.agents
  ADD CONSTRAINT agents_rule_runs_as CHECK ((type = 'RULE') = (runs_as IS NOT NULL));
COMMENT ON COLUMN orchestration.agents.registered_by IS
  'The role that registered the agent';
COMMENT ON COLUMN orchestration.agents.runs_as IS
  'RULE agents: the role whose privileges the function runs with, the role that last set the function (register_agent or update_agent), which had to be allowed to execute it';

-- Four eyes compare logins: runs started before the upgrade count their starting role as
-- their login.
ALTER TABLE orchestration.workflow_runs ADD COLUMN started_login name;
UPDATE orchestration.workflow_runs SET started_login = started_by;
ALTER TABLE orchestration.workflow_runs ALTER COLUMN started_login SET DEFAULT session_user;
ALTER TABLE orchestration.workflow_runs ALTER COLUMN started_login SET NOT NULL;
COMMENT ON COLUMN orchestration.workflow_runs.started_by IS
  'The role that started the run (the SET ROLE role, else the login; for a table trigger, the role that wrote the row)';
COMMENT ON COLUMN orchestration.workflow_runs.started_login IS
  'The person who started the run: the session''s login role (inside a RULE attempt, the agent''s role). With orchestration.approval_four_eyes, this login cannot answer the run''s approvals, whatever role it switches to';

-- The crash-loop breaker's count.
ALTER TABLE orchestration.workflow_run_nodes ADD COLUMN crashes integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN orchestration.workflow_run_nodes.crashes IS
  'How many times the worker process running this node (the scheduler or a RULE worker) died while working on it; at 2 the node is failed instead of being tried again (a crash-loop breaker)';

-- The role that last defined a workflow vouches for its trigger (runs a NATS message
-- starts are its runs).
ALTER TABLE orchestration.workflows ADD COLUMN updated_by name;
UPDATE orchestration.workflows SET updated_by = created_by;
ALTER TABLE orchestration.workflows ALTER COLUMN updated_by SET DEFAULT current_user;
ALTER TABLE orchestration.workflows ALTER COLUMN updated_by SET NOT NULL;
COMMENT ON COLUMN orchestration.workflows.updated_by IS
  'The role that last created or changed the workflow: it vouches for its trigger, so runs a NATS message starts count as started by it (also for four-eyes approvals)';

-- One name for one thing: a run is run_id in every table (agent_runs and
-- workflow_approvals said workflow_run_id), with its index and foreign key as a fresh
-- install has them; agent_runs gains its node's key; the views say node_key.
ALTER TABLE orchestration.agent_runs RENAME COLUMN workflow_run_id TO run_id;
-- An index keeps the column name it was made with: made again.
DROP INDEX orchestration.agent_runs_workflow_run_id_idx;
CREATE INDEX ON orchestration.agent_runs (run_id);
ALTER TABLE orchestration.agent_runs RENAME CONSTRAINT agent_runs_workflow_run_id_fkey TO agent_runs_run_id_fkey;
ALTER TABLE orchestration.agent_runs ADD COLUMN node_key text;
UPDATE orchestration.agent_runs a SET node_key = n.node_key
FROM orchestration.workflow_run_nodes n WHERE n.id = a.run_node_id;
COMMENT ON COLUMN orchestration.agent_runs.node_key IS
  'The node of the run this attempt was of (its key in the workflow)';
ALTER TABLE orchestration.workflow_approvals RENAME COLUMN workflow_run_id TO run_id;
DROP INDEX orchestration.workflow_approvals_workflow_run_id_status_idx;
CREATE INDEX ON orchestration.workflow_approvals (run_id, status);
ALTER TABLE orchestration.workflow_approvals RENAME CONSTRAINT workflow_approvals_workflow_run_id_fkey TO workflow_approvals_run_id_fkey;
DROP VIEW orchestration.node_runs;
DROP VIEW orchestration.pending_approvals;
CREATE VIEW orchestration.node_runs WITH (security_invoker = true) AS
SELECT n.run_id, n.project_id, w.name AS workflow, n.node_key, a.name AS agent, n.action,
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
  'One row per node per run: status, attempt, timings, the error (or why it was skipped), and the last attempt''s exit code and log tail. ORDER BY run_id, level, node_key';

CREATE VIEW orchestration.pending_approvals WITH (security_invoker = true) AS
SELECT ap.id AS approval_id, ap.project_id, ap.run_id, w.name AS workflow,
       ap.node_key, a.name AS agent, n.action, r.started_by,
       ap.requested_at, ap.expires_at, now() - ap.requested_at AS waiting,
       n.resolved_input AS input
FROM orchestration.workflow_approvals ap
JOIN orchestration.workflow_run_nodes n ON n.id = ap.run_node_id
JOIN orchestration.workflow_runs r ON r.id = ap.run_id
JOIN orchestration.workflows w ON w.id = r.workflow_id
LEFT JOIN orchestration.agents a ON a.id = n.agent_id
WHERE ap.status = 'PENDING';
COMMENT ON VIEW orchestration.pending_approvals IS
  'Approvals waiting for an answer, with the input the node will run with. Answer with orchestration.approve(approval_id) or orchestration.reject(approval_id)';

GRANT SELECT ON orchestration.node_runs, orchestration.pending_approvals
  TO orchestration_admin, orchestration_operator, orchestration_approver;

-- put_agent and put_workflow: the digest of the spec last stored.
ALTER TABLE orchestration.agents ADD COLUMN spec_digest text;
COMMENT ON COLUMN orchestration.agents.spec_digest IS
  'md5 of the normalized spec last stored (register_agent, update_agent); put_agent changes nothing when it is the same';
ALTER TABLE orchestration.workflows ADD COLUMN spec_digest text;
COMMENT ON COLUMN orchestration.workflows.spec_digest IS
  'md5 of the normalized spec last stored (create_workflow, update_workflow); put_workflow changes nothing when it is the same. NULL after archive_workflow';

-- An approval pins the agent it was given for. Approvals given before the upgrade pin
-- nothing: a node approved then but not yet run is asked about again.
ALTER TABLE orchestration.workflow_approvals ADD COLUMN agent_pin text;
COMMENT ON COLUMN orchestration.workflow_approvals.agent_pin IS
  'What the approver was asked to let run (orchestration.agent_pin at the request): an APPROVED approval counts only while the agent and its function are unchanged';

-- claim_nodes returns runs_as instead of registered_by (a new result type), and takes the
-- kind of node and the projects to leave out (the RULE workers).
DROP FUNCTION orchestration.claim_nodes(integer, integer, integer, bigint[]);

-- The functions changed or added since 0.1.0, as extension/*.sql defines them.

CREATE OR REPLACE FUNCTION orchestration.calling_role() RETURNS name
-- PARALLEL RESTRICTED: a parallel worker would not know the RULE attempt's role.
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'orch_calling_role';

CREATE FUNCTION orchestration.calling_login() RETURNS name
-- PARALLEL RESTRICTED: a parallel worker would not know the RULE attempt's role.
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'orch_calling_login';

CREATE FUNCTION orchestration.in_rule_attempt() RETURNS boolean
-- PARALLEL RESTRICTED: a parallel worker would not know the RULE attempt's role.
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'orch_in_rule_attempt';

CREATE OR REPLACE FUNCTION orchestration.agent_json(a orchestration.agents) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'id', a.id, 'project_id', a.project_id, 'name', a.name, 'type', a.type,
           'version', a.version, 'risk_level', a.risk_level, 'description', a.description,
           'registered_by', a.registered_by, 'registered_at', a.registered_at,
           'updated_at', a.updated_at))
      || CASE WHEN a.type = 'RULE' THEN
           jsonb_build_object('function', a.rule_function, 'runs_as', a.runs_as,
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

CREATE OR REPLACE FUNCTION orchestration.resolve_rule_function(function_name text, caller name)
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
  IF NOT has_function_privilege(caller, fn, 'EXECUTE')
     OR NOT has_schema_privilege(caller, p.pronamespace, 'USAGE') THEN
    RAISE EXCEPTION 'invalid agent spec field "function": role "%" may not execute %', caller, fn
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'A RULE function runs with the privileges of the role that last set it (register_agent or update_agent); that role needs EXECUTE on it and USAGE on its schema.';
  END IF;
  -- The function's owner can change what it does whenever it likes; running it as a role
  -- with privileges the owner lacks would lend the owner those privileges.
  IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p.proowner)
     AND NOT pg_has_role(p.proowner, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = caller), 'USAGE') THEN
    RAISE EXCEPTION 'invalid agent spec field "function": % is owned by role "%", who could change what it does and so act as "%"',
                    fn, p.proowner::regrole, caller
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('A RULE function must be owned by the role that sets it (or by a role with its privileges, or a superuser): ALTER FUNCTION %s OWNER TO %I, or let "%s" set the agent.',
                          fn, caller, p.proowner::regrole);
  END IF;
  RETURN fn::text;
END
$$;

CREATE OR REPLACE FUNCTION orchestration.store_agent(agent_id bigint, project_id integer, spec jsonb,
                                          rule_function text, caller name)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  stored_id bigint := agent_id;
  in_use record;
  documents jsonb;
BEGIN
  BEGIN
    IF stored_id IS NULL THEN
      -- The NOT NULL and CHECK columns here; the UPDATE below writes the rest, for
      -- both a new agent and an updated one.
      INSERT INTO orchestration.agents AS a
        (project_id, name, type, version, registered_by, timeout_seconds, image, rule_function,
         runs_as)
      VALUES (store_agent.project_id, spec->>'name', (spec->>'type')::orchestration.agent_type,
              spec->>'version', caller, (spec#>>'{limits,timeout_seconds}')::integer,
              spec->>'image', store_agent.rule_function,
              CASE WHEN store_agent.rule_function IS NOT NULL THEN caller END)
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
      -- A RULE function runs as the role that last set it (checked by
      -- resolve_rule_function to be allowed to execute it), never as an earlier, perhaps
      -- more privileged, one: whoever points the agent at a function vouches for it.
      runs_as = CASE WHEN store_agent.rule_function IS NOT NULL THEN caller END,
      updated_at = now(),
      spec_digest = md5(spec::text)
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
  -- The schemas may $ref the project's registered schemas (and only this project's):
  -- checked now that those are at hand, and recorded, so that they cannot change under the
  -- capability (register_schema refuses), locked until this commits.
  PERFORM orchestration.lock_project_schemas(project_id, false);
  documents := orchestration.project_schemas(project_id);
  INSERT INTO orchestration.agent_capabilities AS c
    (agent_id, project_id, name, description, input_schema, output_schema, schema_refs)
  SELECT stored_id, store_agent.project_id, e->>'name', e->>'description', e->'input_schema', e->'output_schema',
         ARRAY(SELECT DISTINCT r FROM unnest(
                 orchestration.schema_refs(e->'input_schema', documents, '',
                                           format('invalid agent spec field "capabilities[%s].input_schema"', i - 1))
                 || orchestration.schema_refs(e->'output_schema', documents, '',
                                              format('invalid agent spec field "capabilities[%s].output_schema"', i - 1))) r
               ORDER BY r)
  FROM jsonb_array_elements(spec->'capabilities') WITH ORDINALITY AS caps(e, i)
  ON CONFLICT ON CONSTRAINT agent_capabilities_agent_id_name_key DO UPDATE
    SET description = excluded.description,
        input_schema = excluded.input_schema,
        output_schema = excluded.output_schema,
        schema_refs = excluded.schema_refs;
  RETURN stored_id;
END
$$;

CREATE OR REPLACE FUNCTION orchestration.update_agent(agent_id bigint, spec jsonb) RETURNS jsonb
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
    spec - ARRAY['id', 'project_id', 'registered_by', 'registered_at', 'updated_at', 'runs_as']);
  PERFORM orchestration.store_agent(
    agent_id, (target.agent).project_id, normalized,
    CASE WHEN normalized->>'type' = 'RULE'
         THEN orchestration.resolve_rule_function(normalized->>'function', target.caller) END,
    target.caller);
  RETURN (SELECT orchestration.agent_json(a) FROM orchestration.agents a WHERE a.id = agent_id);
END
$$;

CREATE OR REPLACE FUNCTION orchestration.set_secret(project_id integer, name text, value text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
BEGIN
  PERFORM orchestration.authorize(project_id, 'orchestration_admin');
  IF name IS NULL THEN
    RAISE EXCEPTION 'secret name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  PERFORM orchestration.validate_name('secret', name);
  IF value IS NULL THEN
    RAISE EXCEPTION 'secret value must not be NULL' USING ERRCODE = 'null_value_not_allowed',
      HINT = 'Use orchestration.delete_secret() to remove a secret.';
  END IF;
  IF octet_length(value) > 65536 THEN
    RAISE EXCEPTION 'secret "%" is too long: % bytes, at most 65536', name, octet_length(value)
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  BEGIN
    UPDATE orchestration.secrets s SET value = set_secret.value, updated_at = now()
    WHERE s.project_id = set_secret.project_id AND s.name = set_secret.name;
    IF NOT FOUND THEN
      INSERT INTO orchestration.secrets (project_id, name, value)
      VALUES (set_secret.project_id, set_secret.name, set_secret.value);
    END IF;
  EXCEPTION WHEN OTHERS THEN
    -- A constraint's error would show the row, value included, in its DETAIL (and so in
    -- the server log): keep the message and SQLSTATE, never the detail.
    RAISE EXCEPTION 'could not store secret "%" of project %: %', name, project_id, SQLERRM
      USING ERRCODE = SQLSTATE;
  END;
END
$$;

-- An event's subject, written in one place (emit_events, emit_event, record_attempts).
CREATE FUNCTION orchestration.event_subject(run_id bigint, node_key text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT 'run/' || run_id::text || coalesce('/node/' || node_key, '')
$$;
COMMENT ON FUNCTION orchestration.event_subject(bigint, text) IS
  'Internal: the subject of an outbox event, run/<run id> or run/<run id>/node/<node key>';

DROP FUNCTION orchestration.emit_events(integer[], text[], bigint[], text[], jsonb[]);
CREATE FUNCTION orchestration.emit_events(project_ids integer[], types text[], run_ids bigint[],
                                          node_keys text[], data jsonb[], occurred_at timestamptz[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is (its statement takes arrays: planned for their sizes at
-- every call, it cost eight times what it runs for).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  emitted bigint;
BEGIN
  WITH inserted AS (
    INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
    SELECT u.project_id, u.type, u.subject, u.run_id,
           orchestration.event_document(u.project_id, u.type, u.subject, u.run_id, u.node_key, r.traceparent, u.data,
                                        u.occurred_at)
    FROM (SELECT u.*, orchestration.event_subject(u.run_id, u.node_key) AS subject
          FROM unnest(project_ids, types, run_ids, node_keys, data, occurred_at) WITH ORDINALITY
               AS u(project_id, type, run_id, node_key, data, occurred_at, position)) u
    LEFT JOIN orchestration.workflow_runs r ON r.id = u.run_id
    ORDER BY u.position
    RETURNING e.id, e.type, e.run_id
  )
  SELECT count(*) INTO emitted
  FROM (SELECT * FROM inserted ORDER BY id) i,
       LATERAL pg_notify('orchestration_events', orchestration.event_notification(i.id, i.type, i.run_id));
  IF emitted > 0 THEN
    PERFORM orchestration.wake_relay();
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.emit_events(integer[], text[], bigint[], text[], jsonb[], timestamptz[]) IS
  'Internal: writes CloudEvents 1.0 documents to the outbox (orchestration.events) in array order, one per element (type is the full orchestration.<entity>.<event>; the time now, or occurred_at where it is given), sends NOTIFY orchestration_events (an empty payload; with orchestration.notify_details = on, each event''s id, type and run id), and wakes the NATS relay at commit. Runs in the caller''s transaction: a rollback emits nothing';
REVOKE ALL ON FUNCTION orchestration.emit_events(integer[], text[], bigint[], text[], jsonb[], timestamptz[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION orchestration.start_workflows_from_nats(pattern text, subject text, message text)
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
    -- Whoever last defined the workflow chose to start runs from this subject: the run
    -- is theirs, also as the person four-eyes approvals compare.
    run_ids := run_ids || orchestration.create_run(target, 'nats', context, target.updated_by);
    UPDATE orchestration.workflow_runs r SET started_login = target.updated_by
    WHERE r.id = run_ids[cardinality(run_ids)];
  END LOOP;
  RETURN jsonb_build_object('run_ids', to_jsonb(run_ids));
END
$$;

CREATE OR REPLACE FUNCTION orchestration.store_workflow_nodes(workflow_id bigint, project_id integer, spec jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  missing record;
  known text;
  stored integer;
  placed integer;
  level_of jsonb;
BEGIN
  SELECT e.node->>'id' AS node_key, e.node->>'agent' AS agent_name, e.node->>'action' AS action,
         a.id AS agent_id
    INTO missing
  FROM pg_catalog.jsonb_array_elements(spec->'nodes') WITH ORDINALITY AS e(node, ordinal)
  LEFT JOIN orchestration.agents a
    ON a.project_id = store_workflow_nodes.project_id AND a.name = e.node->>'agent'
  WHERE a.id IS NULL
     OR NOT EXISTS (SELECT 1 FROM orchestration.agent_capabilities c
                    WHERE c.agent_id = a.id AND c.name = e.node->>'action')
  ORDER BY e.ordinal LIMIT 1;
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
     retries, retry_backoff_seconds, timeout_seconds, condition, run_if_skipped, refs, dependents)
  SELECT store_workflow_nodes.workflow_id, store_workflow_nodes.project_id, e.node->>'id', a.id,
         e.node->>'action', e.node->'inputs',
         ARRAY(SELECT jsonb_array_elements_text(e.node->'depends_on')),
         (e.node->>'approval_required')::boolean, (e.node->>'retries')::integer,
         (e.node->>'retry_backoff_seconds')::numeric, (e.node->>'timeout_seconds')::integer,
         nullif(e.node->'when', 'null'), (e.node->>'run_if_skipped')::boolean,
         ARRAY(SELECT jsonb_array_elements_text(e.node->'refs')),
         ARRAY(SELECT jsonb_array_elements_text(e.node->'dependents'))
  FROM pg_catalog.jsonb_array_elements(spec->'nodes') WITH ORDINALITY AS e(node, ordinal)
  JOIN orchestration.agents a
    ON a.project_id = store_workflow_nodes.project_id AND a.name = e.node->>'agent'
  ORDER BY e.ordinal;
  GET DIAGNOSTICS stored = ROW_COUNT;

  -- Levels, which the scheduler dispatches by (run nodes copy them) and workflow_levels
  -- shows, are computed here and nowhere else: Kahn's algorithm as a recursive CTE over
  -- the edges just stored. Each step holds the nodes placed at the last level (waiting =
  -- 0) and the nodes still waiting for some of their dependencies (waiting > 0: how
  -- many). A node placed at level k releases each of its dependents once; a node whose
  -- last dependency is released is placed at level k + 1, one more than its deepest
  -- dependency. One row per node per step (DISTINCT): the work is the edges plus, per
  -- node, the levels it waits between its first dependency and its last, never the paths
  -- (2^200 of them for 200 diamonds in series). Window functions, not GROUP BY, count the
  -- releases (a recursive term may not aggregate). A node's row is read by its key in a
  -- subquery (one index probe, once per node placed and once per node first released),
  -- never by a join: a plan made with the statistics of an emptier table could make that
  -- join a scan of every node at every level. Cycles were refused already
  -- (normalize_workflow_spec names them); nodes on one would never be placed, and the
  -- level bound ends the iteration.
  WITH RECURSIVE kahn(node_key, level, waiting) AS (
    SELECT n.node_key, 0, 0 FROM orchestration.workflow_nodes n
    WHERE n.workflow_id = store_workflow_nodes.workflow_id AND cardinality(n.depends_on) = 0
    UNION ALL
    SELECT r.node_key, r.level,
           coalesce(r.waiting, (SELECT cardinality(v.depends_on) FROM orchestration.workflow_nodes v
                                WHERE v.workflow_id = store_workflow_nodes.workflow_id AND v.node_key = r.node_key))
           - r.released
    FROM (SELECT DISTINCT s.node_key, k.level + 1 AS level, max(s.waiting) OVER per_node AS waiting,
                 (sum(s.released) OVER per_node)::integer AS released
          FROM kahn k
          CROSS JOIN LATERAL (
            SELECT d.node_key, NULL::integer AS waiting, 1 AS released
            FROM unnest((SELECT f.dependents FROM orchestration.workflow_nodes f
                         WHERE f.workflow_id = store_workflow_nodes.workflow_id AND f.node_key = k.node_key)) AS d(node_key)
            WHERE k.waiting = 0
            UNION ALL
            SELECT k.node_key, k.waiting, 0 WHERE k.waiting > 0) s
          WHERE k.level < stored
          WINDOW per_node AS (PARTITION BY s.node_key)) r
  )
  SELECT count(*), jsonb_object_agg(k.node_key, k.level) INTO placed, level_of FROM kahn k WHERE k.waiting = 0;
  IF placed <> stored THEN
    RAISE EXCEPTION 'store_workflow_nodes: % of the % nodes of workflow % got a level', placed, stored, workflow_id
      USING ERRCODE = 'internal_error';
  END IF;
  -- Looked up by key in one pass (no join a misestimate could make a loop over both).
  UPDATE orchestration.workflow_nodes n SET level = (level_of->>n.node_key)::integer
  WHERE n.workflow_id = store_workflow_nodes.workflow_id AND (level_of->>n.node_key)::integer > 0;
  UPDATE orchestration.workflows w SET spec_digest = md5(spec::text) WHERE w.id = store_workflow_nodes.workflow_id;
END
$$;

CREATE OR REPLACE FUNCTION orchestration.create_workflow(project_id integer, spec jsonb) RETURNS bigint
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
  INSERT INTO orchestration.workflows AS w (project_id, name, description, trigger, status, created_by, updated_by)
  VALUES (project_id, normalized->>'name', normalized->>'description', normalized->'trigger',
          (normalized->>'status')::orchestration.workflow_status, caller, caller)
  RETURNING w.id INTO new_id;
  PERFORM orchestration.store_workflow_nodes(new_id, project_id, normalized);
  RETURN new_id;
END
$$;

CREATE OR REPLACE FUNCTION orchestration.update_workflow(workflow_id bigint, spec jsonb) RETURNS jsonb
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
    version = w.version + 1, updated_at = now(), updated_by = target.caller
  WHERE w.id = update_workflow.workflow_id;
  PERFORM orchestration.store_workflow_nodes(workflow_id, (target.workflow).project_id, normalized);
  RETURN orchestration.workflow_json(workflow_id);
END
$$;

-- The runs started in the current transaction (by start_workflow, a table trigger or a
-- NATS message the relay turned into runs), kept by the backend: a writer finds the run its
-- INSERT started. A rolled-back savepoint drops its runs; the list ends with the transaction.
CREATE FUNCTION orchestration.note_started_run(run_id bigint) RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'orch_note_started_run';
COMMENT ON FUNCTION orchestration.note_started_run(bigint) IS
  'Internal (create_run): remembers a run started in this transaction, for started_runs()';

-- Ids only: a run a trigger started in a project the writer lacks (the table's owner has
-- it) stays invisible to the writer; its id says no more than that the trigger fired.
CREATE FUNCTION orchestration.started_runs() RETURNS bigint[]
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_started_runs';
COMMENT ON FUNCTION orchestration.started_runs() IS
  'The ids of the runs started in the current transaction so far, in order (by start_workflow, or by a table trigger the caller''s writes fired); empty when none. A rolled-back savepoint takes its runs with it';

-- New arguments, idempotency_key and priority (the Python client, issue 15).
DROP FUNCTION orchestration.create_run(orchestration.workflows, text, jsonb, name);
CREATE OR REPLACE FUNCTION orchestration.create_run(workflow orchestration.workflows, trigger text,
                                         context jsonb, started_by name,
                                         idempotency_key text DEFAULT NULL, priority integer DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
-- The nodes are copied in node_key order by an index scan, not a bitmap scan and a sort.
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
  run_id bigint;
  event_id bigint;
  first_rule boolean;
  first_container boolean;
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
  -- The run, a copy of every node and the run's created event, in one statement (as three,
  -- with emit_event, they cost a start_workflow call a tenth more); then what emit_event
  -- does after its insert. The copies are made in node_key order (the unique index's): ids
  -- break ties only after level in dispatch order. Which workers the first nodes
  -- need: a node whose agent was deleted is failed by the scheduler.
  WITH run AS (
    INSERT INTO orchestration.workflow_runs AS r
      (workflow_id, project_id, workflow_version, trigger, context, traceparent, started_by,
       started_login, idempotency_key, priority)
    VALUES (workflow.id, workflow.project_id, workflow.version, trigger, context,
            orchestration.child_traceparent(context->>'traceparent'), started_by,
            orchestration.calling_login(), create_run.idempotency_key, create_run.priority)
    RETURNING r.id, r.traceparent
  ), copied AS (
    INSERT INTO orchestration.workflow_run_nodes
      (run_id, project_id, node_key, agent_id, action, inputs, depends_on, approval_required,
       retries, retry_backoff_seconds, timeout_seconds, condition, run_if_skipped, refs,
       dependents, level, pending_deps, priority)
    SELECT run.id, n.project_id, n.node_key, n.agent_id, n.action, n.inputs, n.depends_on,
           n.approval_required, n.retries, n.retry_backoff_seconds, n.timeout_seconds,
           n.condition, n.run_if_skipped, n.refs, n.dependents, n.level, cardinality(n.depends_on),
           create_run.priority
    FROM run, orchestration.workflow_nodes n
    WHERE n.workflow_id = workflow.id
    ORDER BY n.node_key
    RETURNING agent_id, pending_deps
  ), created AS (
    INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
    SELECT workflow.project_id, 'orchestration.run.created', orchestration.event_subject(run.id, NULL), run.id,
           orchestration.event_document(workflow.project_id, 'orchestration.run.created',
             orchestration.event_subject(run.id, NULL), run.id, NULL, run.traceparent,
             jsonb_build_object('workflow', workflow.name, 'workflow_id', workflow.id, 'status', 'PENDING',
                                'trigger', trigger, 'started_by', started_by))
    FROM run
    RETURNING e.id
  )
  SELECT run.id, created.id, first.rule, first.container
    INTO run_id, event_id, first_rule, first_container
  FROM run, created,
       (SELECT bool_or(a.type IS NOT DISTINCT FROM 'RULE') AS rule, bool_or(a.type IS DISTINCT FROM 'RULE') AS container
        FROM copied c LEFT JOIN orchestration.agents a ON a.id = c.agent_id
        WHERE c.pending_deps = 0) first;
  PERFORM pg_notify('orchestration_events', orchestration.event_notification(event_id, 'orchestration.run.created', run_id));
  PERFORM orchestration.wake_relay();
  PERFORM orchestration.wake_workers(first_rule, first_container, workflow.project_id);
  PERFORM orchestration.note_started_run(run_id);
  RETURN run_id;
END
$$;
COMMENT ON FUNCTION orchestration.create_run(orchestration.workflows, text, jsonb, name, text, integer) IS
  'Internal: creates a PENDING run of an ACTIVE workflow with a copy of its nodes (and the caller''s idempotency key and priority), in the caller''s transaction, and wakes at commit the workers its first nodes need';

CREATE OR REPLACE FUNCTION orchestration.start_workflow_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'orch_start_workflow_trigger';
COMMENT ON FUNCTION orchestration.start_workflow_trigger() IS
$$Trigger function: CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger('<project_id>', '<workflow>') starts a run for every row change, in the same transaction, with context {table, operation, new, old}; with more arguments, each '<key>=<column>' (or '<column>', its own key), the context is those columns of the row instead (the new row; the old one for DELETE). started_runs() gives the run's id. The table's owner needs orchestration_operator and the project$$;

CREATE FUNCTION orchestration.start_run_from_trigger(table_oid oid, project_arg text, workflow text,
                                                     operation text, new_row jsonb, old_row jsonb,
                                                     mapping text[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  project integer;
  owner name;
  table_name text;
  quoted_name text;
  target orchestration.workflows;
  context jsonb;
  row_json jsonb := coalesce(new_row, old_row);
  item text;
  context_key text;
  column_name text;
BEGIN
  BEGIN
    project := project_arg::integer;
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RAISE EXCEPTION 'start_workflow_trigger: the first argument must be a project id, not "%"', project_arg
      USING ERRCODE = 'invalid_parameter_value';
  END;
  -- The table's owner chose to attach this trigger, so the owner must be allowed to
  -- start runs in the project; whoever writes the row need not be.
  -- The owner's name as it is (regrole's text output would quote "CI-Deploy").
  SELECT o.rolname, n.nspname || '.' || c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
    INTO owner, table_name, quoted_name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_roles o ON o.oid = c.relowner
  WHERE c.oid = table_oid;
  PERFORM orchestration.authorize(project, 'orchestration_operator', owner);
  SELECT * INTO target FROM orchestration.workflows w
  WHERE w.project_id = project AND w.name = start_run_from_trigger.workflow;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'start_workflow_trigger on %: workflow "%" does not exist in project %',
                    table_name, workflow, project
      USING ERRCODE = 'undefined_object';
  END IF;
  IF cardinality(mapping) = 0 THEN
    context := jsonb_build_object('table', table_name, 'operation', operation, 'new', new_row, 'old', old_row);
  ELSE
    -- The columns the trigger names, under the keys it gives them.
    context := '{}';
    FOREACH item IN ARRAY mapping LOOP
      context_key := CASE WHEN position('=' IN item) > 0 THEN trim(split_part(item, '=', 1)) ELSE trim(item) END;
      column_name := CASE WHEN position('=' IN item) > 0 THEN trim(substr(item, position('=' IN item) + 1)) ELSE trim(item) END;
      IF context_key = '' OR column_name = '' THEN
        RAISE EXCEPTION 'start_workflow_trigger on %: "%" is not <key>=<column> or <column>', table_name, item
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF NOT row_json ? column_name THEN
        RAISE EXCEPTION 'start_workflow_trigger on %: the table has no column "%"', table_name, column_name
          USING ERRCODE = 'undefined_column',
                HINT = 'Its columns: ' || (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
                                            WHERE a.attrelid = table_oid AND a.attnum > 0 AND NOT a.attisdropped) || '.';
      END IF;
      context := context || jsonb_build_object(context_key, row_json->column_name);
    END LOOP;
  END IF;
  RETURN orchestration.create_run(target, 'table:' || quoted_name, context, orchestration.calling_role());
END
$$;

-- Locks up to max_nodes runnable nodes, in dispatch order (priority, level, id), and returns
-- what a worker needs to move each one on (75_scheduling.sql says more).
CREATE OR REPLACE FUNCTION orchestration.claim_nodes(max_nodes integer, max_running integer,
                                          max_running_per_project integer,
                                          reserved_runs bigint[], node_kind text,
                                          excluded_projects integer[], only_project integer,
                                          finished_nodes bigint[])
RETURNS TABLE (node_id bigint, run_id bigint, project_id integer, node_key text,
               attempt integer, inputs jsonb, condition jsonb, agent_name text, action text,
               agent_type orchestration.agent_type, rule_function text, runs_as name,
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
  claimed_ids bigint[];
  starting_runs bigint[];   -- the runs of the claimed nodes this claim starts, if PENDING
  lock_project integer := only_project;
BEGIN
  IF node_kind IS NULL OR node_kind NOT IN ('any', 'container', 'rule') THEN
    RAISE EXCEPTION 'claim_nodes: node_kind must be any, container or rule, not %', node_kind
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Every scan below reads the queue index in dispatch order and passes over, in the scan
  -- itself, the rows nobody can lock now (SKIP LOCKED: a node another worker holds, a run
  -- an API call holds), the runs others are about to lock (reserved_runs) and the projects
  -- left out: however many such nodes there are, they cannot hide the ones behind them.
  -- The run row is locked too, and before the node (the lock order in 70_runs.sql): FOR
  -- KEY SHARE, which other claims share, so several workers run nodes of one run at once,
  -- while the API's FOR UPDATE (cancel_run, retry_run, approve, reject) waits for them all
  -- and makes the scan pass over the run. A scan that passes over a run someone holds
  -- takes none of its nodes on the way (locked in the other order, every node of a held
  -- run the scan looked at stayed locked until its transaction ended, out of reach of the
  -- transaction holding the run).
  -- An agent's type is read by its key (a subquery, not a join the generic plan could
  -- turn into a scan of agents per node).
  IF node_kind = 'rule' THEN
    -- A RULE worker claims one project's nodes per transaction (the first project with a
    -- node it can lock): a function that hangs holds back no other project's nodes. RULE
    -- nodes never stay RUNNING, so no limit counts them.
    IF lock_project IS NULL THEN
      SELECT n.project_id INTO lock_project
      FROM orchestration.workflow_run_nodes n
      JOIN orchestration.workflow_runs r ON r.id = n.run_id
      WHERE n.status = 'PENDING' AND n.pending_deps = 0
        AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= clock_timestamp())
        AND (SELECT a.type FROM orchestration.agents a WHERE a.id = n.agent_id) = 'RULE' AND NOT n.project_id = ANY (excluded_projects)
        AND r.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL') AND NOT r.id = ANY (reserved_runs)
      ORDER BY n.priority DESC, n.level, n.id
      LIMIT 1
      FOR KEY SHARE OF r SKIP LOCKED FOR UPDATE OF n SKIP LOCKED;
      IF lock_project IS NULL THEN
        RETURN;
      END IF;
    END IF;
    -- A PENDING run of more than one node starts below; a one-node run is left to its
    -- first write (an index probe by (run_id, node_key) tells them apart). So are the
    -- runs of a claim that holds nodes of several runs: starting one takes its row at
    -- once, and the worker's first write then takes the others' in id order (lock_runs),
    -- which could mean waiting for a run below one it holds (the lock order, 70_runs.sql).
    SELECT array_agg(l.id ORDER BY l.priority DESC, l.level, l.id),
           CASE WHEN count(DISTINCT l.run_id) = 1 THEN
             array_agg(DISTINCT l.run_id) FILTER (
               WHERE l.run_status = 'PENDING'
                 AND EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes m
                             WHERE m.run_id = l.run_id AND m.node_key <> l.node_key)) END
      INTO claimed_ids, starting_runs
    FROM (SELECT n.id, n.level, n.priority, n.run_id, n.node_key, r.status AS run_status
          FROM orchestration.workflow_run_nodes n
          JOIN orchestration.workflow_runs r ON r.id = n.run_id
          WHERE n.status = 'PENDING' AND n.pending_deps = 0
            AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= clock_timestamp())
            AND (SELECT a.type FROM orchestration.agents a WHERE a.id = n.agent_id) = 'RULE' AND n.project_id = lock_project
            AND r.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL') AND NOT r.id = ANY (reserved_runs)
          ORDER BY n.priority DESC, n.level, n.id
          LIMIT max_nodes
          FOR KEY SHARE OF r SKIP LOCKED FOR UPDATE OF n SKIP LOCKED) l;
  ELSE
    -- The scheduler's claim takes the run's row for writing at once (FOR NO KEY UPDATE,
    -- passing over runs a RULE worker is writing): what its pass writes then never waits
    -- for a RULE worker, which may hold a run's row while a tenant's function runs.
    -- Containers count against the limits while they run; one that has finished and
    -- waits for its result to be recorded (its run is locked by someone) does not.
    SELECT count(*) INTO running_total FROM orchestration.workflow_run_nodes n
    WHERE n.status = 'RUNNING' AND NOT n.id = ANY (finished_nodes);
    -- The first lockable runnable nodes, then those the limits leave room for: every RULE
    -- node, and the containers while fewer than max_running_per_project run in their
    -- project and, of those, fewer than max_running in all. The others locked stay
    -- PENDING (and locked until this transaction ends).
    WITH locked AS MATERIALIZED (
      SELECT n.id, n.project_id, n.level, n.priority,
             (SELECT a.type FROM orchestration.agents a WHERE a.id = n.agent_id) IS DISTINCT FROM 'RULE' AS container
      FROM orchestration.workflow_run_nodes n
      JOIN orchestration.workflow_runs r ON r.id = n.run_id
      WHERE n.status = 'PENDING' AND n.pending_deps = 0
        AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= clock_timestamp())
        AND (node_kind = 'any' OR (SELECT a.type FROM orchestration.agents a WHERE a.id = n.agent_id) IS DISTINCT FROM 'RULE')
        AND NOT n.project_id = ANY (excluded_projects)
        AND (only_project IS NULL OR n.project_id = only_project)
        AND r.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL') AND NOT r.id = ANY (reserved_runs)
      ORDER BY n.priority DESC, n.level, n.id
      LIMIT max_nodes * 4
      FOR NO KEY UPDATE OF r SKIP LOCKED FOR UPDATE OF n SKIP LOCKED
    ), busy AS (
      SELECT n.project_id, count(*) AS running
      FROM orchestration.workflow_run_nodes n
      WHERE n.status = 'RUNNING' AND NOT n.id = ANY (finished_nodes)
      GROUP BY n.project_id
    ), in_project AS (
      SELECT l.*, count(*) FILTER (WHERE l.container)
                    OVER (PARTITION BY l.project_id ORDER BY l.priority DESC, l.level, l.id) AS rank_in_project
      FROM locked l
    ), allowed_in_project AS (
      SELECT p.* FROM in_project p LEFT JOIN busy b ON b.project_id = p.project_id
      WHERE NOT p.container OR max_running_per_project <= 0
         OR p.rank_in_project + coalesce(b.running, 0) <= max_running_per_project
    ), ranked AS (
      SELECT p.*, count(*) FILTER (WHERE p.container) OVER (ORDER BY p.priority DESC, p.level, p.id) AS rank
      FROM allowed_in_project p
    )
    SELECT array_agg(x.id ORDER BY x.priority DESC, x.level, x.id) INTO claimed_ids
    FROM (SELECT k.id, k.level, k.priority FROM ranked k
          WHERE NOT k.container OR max_running <= 0 OR k.rank <= max_running - running_total
          ORDER BY k.priority DESC, k.level, k.id LIMIT max_nodes) x;
    starting_runs := ARRAY(SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (claimed_ids));
  END IF;
  IF claimed_ids IS NULL THEN
    RETURN;
  END IF;

  -- The claim starts the PENDING runs of its nodes (before a RULE node's function runs:
  -- the step from a chain's first node to the next does not carry the start), except a
  -- RULE worker's one-node runs, which start with the write that records their node, or
  -- skips, fails it or asks for its approval (start_run_of): a one-node run's row is
  -- written once, PENDING to its end, after its function. (So do the runs of a RULE claim
  -- of several runs, above.) Another worker starting a run at the same moment is not
  -- waited for (SKIP LOCKED): one of them does it, or the first write.
  IF cardinality(starting_runs) > 0 THEN
    PERFORM orchestration.start_runs(ARRAY(SELECT p.id FROM orchestration.workflow_runs p
                                           WHERE p.id = ANY (starting_runs) AND p.status = 'PENDING'
                                           ORDER BY p.id
                                           FOR NO KEY UPDATE OF p SKIP LOCKED));
  END IF;

  RETURN QUERY SELECT * FROM orchestration.claimed_node_details(claimed_ids);
END
$$;

CREATE OR REPLACE FUNCTION orchestration.note_crash(node_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  run_status orchestration.run_status := orchestration.lock_run_of(node_id);
BEGIN
  IF run_status IS NULL THEN
    RETURN;  -- the node is gone (its run was deleted)
  END IF;
  IF run_status = 'FAILED' THEN
    -- Failed by another worker while the dead process held this node (and perhaps others
    -- of the run): what it held and did not start is skipped, as the failure would have.
    PERFORM orchestration.skip_unstarted_nodes(n.run_id) FROM orchestration.workflow_run_nodes n WHERE n.id = node_id;
    RETURN;
  END IF;
  UPDATE orchestration.workflow_run_nodes n SET crashes = n.crashes + 1
   WHERE n.id = node_id AND n.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL')
  RETURNING * INTO node;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF node.crashes >= 2 THEN
    PERFORM orchestration.fail_node(node_id, format(
      'the worker process running this node died %s times while working on it (attempt %s); it is failed so that it cannot bring the worker down again. The server log has the cause',
      node.crashes, node.attempt + 1));
  ELSE
    RAISE LOG 'pg_orchestration: the previous process of this worker died while working on node % (run %, node "%"); it will be tried once more',
              node.id, node.run_id, node.node_key;
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.note_crash(bigint) IS
  'Internal (scheduler and RULE workers, at start): counts a crash of the worker''s previous process while it worked on a node; a node that brought its worker down twice is failed with a message that says so';

CREATE OR REPLACE FUNCTION orchestration.run_for_write(run_id bigint, required_role name,
                                            OUT run orchestration.workflow_runs, OUT caller name)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Authorized before the run is announced: announcing holds the scheduler off the run
  -- until this transaction ends, which only someone allowed to change the run may do.
  SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'run % does not exist', coalesce(run_id::text, 'NULL') USING ERRCODE = 'undefined_object';
  END IF;
  caller := orchestration.authorize(run.project_id, required_role, object => 'run ' || run_id);
  IF orchestration.in_rule_attempt() THEN
    -- A RULE agent's function runs inside its worker's transaction, which may hold other
    -- runs' rows (its claim, its records so far): waiting here would be a wait outside the
    -- lock order (above), and a deadlock it closed could roll back another worker's pass,
    -- whose functions would then run again. So an agent's call does not wait: the run is
    -- taken now or the call fails (its own run too, while another worker holds nodes of
    -- it). Announced only once taken: an announcement lasts to the end of the worker's
    -- pass, and one left by a failed call would keep every claim off the run meanwhile.
    BEGIN
      SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = run_id FOR UPDATE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
      RAISE EXCEPTION 'run % is in use by another transaction (a worker running its nodes, or a caller changing it); an agent''s function does not wait for a run', run_id
        USING ERRCODE = 'lock_not_available',
              HINT = 'Uncaught, this fails the node; with retries left, it runs again after its backoff.';
    END;
    PERFORM orchestration.reserve_run(run_id);
  ELSE
    PERFORM orchestration.reserve_run(run_id);
    SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = run_id FOR UPDATE;
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.run_for_write(bigint, name) IS
  'Internal: locks a run for cancel_run/retry_run after checking the caller''s role and project; a run of a project the caller lacks is reported as not existing. Called from a RULE agent''s function, it does not wait for a run another transaction holds: it fails (lock_not_available)';

CREATE OR REPLACE FUNCTION orchestration.answer_approval(approval_id bigint,
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
  IF NOT FOUND THEN
    RAISE EXCEPTION 'approval % does not exist', coalesce(approval_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  -- Authorized before the run is announced (see run_for_write).
  caller := orchestration.authorize(approval.project_id, 'orchestration_approver',
                                    object => 'approval ' || approval_id);
  -- Approvals are for people: an agent's code may not answer one, under any role.
  IF orchestration.in_rule_attempt() THEN
    RAISE EXCEPTION 'approval % cannot be answered by an agent (a RULE function runs as "%")',
                    approval_id, caller
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Approvals are answered by people, with approve() or reject() in their own sessions.';
  END IF;
  PERFORM orchestration.reserve_run(approval.run_id);
  PERFORM 1 FROM orchestration.workflow_runs r WHERE r.id = approval.run_id FOR UPDATE;
  SELECT * INTO approval FROM orchestration.workflow_approvals a WHERE a.id = approval_id FOR UPDATE;
  IF approval.status <> 'PENDING' THEN
    RAISE EXCEPTION 'approval % was already answered: %', approval_id,
                    approval.status || coalesce(' by ' || approval.responded_by, '')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = coalesce('Notes: ' || approval.notes, '');
  END IF;
  -- The deadline holds where the answer is given, not only when the scheduler gets round
  -- to expiring it.
  IF approval.expires_at IS NOT NULL AND approval.expires_at <= clock_timestamp() THEN
    RAISE EXCEPTION 'approval % expired at %; it can no longer be answered', approval_id, approval.expires_at
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'The scheduler rejects expired approvals and fails their nodes; retry the run with orchestration.retry_run() to ask again.';
  END IF;
  SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = approval.run_id;
  -- Four eyes compare people, not roles: the login that started the run may not answer
  -- it under any role it can switch to (SET ROLE to a group it belongs to included).
  IF coalesce(current_setting('orchestration.approval_four_eyes', true), 'off') IN ('on', 'true', '1')
     AND (run.started_by = caller OR run.started_login = orchestration.calling_login()) THEN
    RAISE EXCEPTION 'role "%" started run % and so cannot answer its approvals',
                    orchestration.calling_login(), run.id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'orchestration.approval_four_eyes is on: another approver must answer.';
  END IF;
  UPDATE orchestration.workflow_approvals a
     SET status = answer, responded_at = now(), responded_by = caller, notes = answer_approval.notes
   WHERE a.id = approval_id
  RETURNING * INTO approval;
  PERFORM orchestration.emit_event(approval.project_id, 'approval', lower(answer::text),
            approval.run_id, approval.node_key,
            jsonb_build_object('approval_id', approval_id, 'status', answer,
                               'responded_by', caller, 'notes', notes));
  RETURN approval;
END
$$;

COMMENT ON FUNCTION orchestration.calling_role() IS
  'The role on whose behalf the API is called: inside a RULE attempt, the agent''s runs_as role; else the SET ROLE role, else the session user. Unlike current_user it is not changed by SECURITY DEFINER functions, so the API''s functions can check the real caller';

COMMENT ON FUNCTION orchestration.calling_login() IS
  'The person behind the call: inside a RULE attempt, the agent''s runs_as role; else the session user (the login), whatever role it has switched to with SET ROLE. Four-eyes approvals compare it';

COMMENT ON FUNCTION orchestration.in_rule_attempt() IS
  'Whether the call comes from a RULE agent''s function, run by the scheduler; approvals refuse answers from agents';

COMMENT ON FUNCTION orchestration.resolve_rule_function(text, name) IS
  'Checks a RULE agent''s function (schema-qualified, (jsonb) returns jsonb, executable by the caller in a schema it may use, owned by the caller, a role with its privileges or a superuser) and returns it as regprocedure text';

COMMENT ON FUNCTION orchestration.update_agent(bigint, jsonb) IS
  'Replaces an agent''s spec (the whole spec, as register_agent takes it; to change one field pass get_agent(id) || ''{"version": "2"}'') and returns the agent as get_agent shows it. A capability used by a workflow cannot be removed. A RULE agent then runs as the caller (runs_as), who must be allowed to execute its function';

COMMENT ON FUNCTION orchestration.start_run_from_trigger(oid, text, text, text, jsonb, jsonb, text[]) IS
  'Internal: the part of start_workflow_trigger that runs as the extension owner (authorizes the table''s owner, builds the context, creates the run); called only by that trigger, through fmgr';

COMMENT ON FUNCTION orchestration.note_crash(bigint) IS
  'Internal (scheduler and RULE workers, at start): counts a crash of the worker''s previous process while it worked on a node; a node that brought its worker down twice is failed with a message that says so';

COMMENT ON FUNCTION orchestration.answer_approval(bigint, orchestration.approval_status, text) IS
  'Internal: records an answer to a PENDING, unexpired approval (and its event) after checking the caller is an approver of the project and, with orchestration.approval_four_eyes, neither the role nor the login that started the run';

CREATE OR REPLACE FUNCTION orchestration.request_approval(node_id bigint, approval_timeout_seconds integer,
                                               input jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  requested timestamptz := clock_timestamp();
  approval_id bigint;
  previous_id bigint;
BEGIN
  IF NOT orchestration.lock_live_run_of(node_id, true) THEN
    RETURN;  -- another worker failed the run meanwhile
  END IF;
  -- Only a node still PENDING: an earlier node of the same claim round may have ended its
  -- run (and skipped this one) meanwhile.
  UPDATE orchestration.workflow_run_nodes n SET status = 'WAITING_APPROVAL', resolved_input = input
  WHERE n.id = node_id AND n.status = 'PENDING' RETURNING * INTO node;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  -- An earlier approval of this node that no longer counts: the agent changed since.
  SELECT ap.id INTO previous_id FROM orchestration.workflow_approvals ap
  WHERE ap.run_node_id = node_id AND ap.status = 'APPROVED' ORDER BY ap.id DESC LIMIT 1;
  INSERT INTO orchestration.workflow_approvals AS ap
    (project_id, run_id, run_node_id, node_key, requested_at, expires_at, agent_pin)
  VALUES (node.project_id, node.run_id, node.id, node.node_key, requested,
          CASE WHEN approval_timeout_seconds > 0
               THEN requested + make_interval(secs => approval_timeout_seconds) END,
          orchestration.agent_pin(node.agent_id))
  RETURNING ap.id INTO approval_id;
  PERFORM orchestration.emit_event(node.project_id, 'approval', 'requested', node.run_id,
            node.node_key, jsonb_build_object('approval_id', approval_id, 'status', 'PENDING')
              || CASE WHEN previous_id IS NOT NULL THEN jsonb_build_object(
                   'previous_approval_id', previous_id,
                   'reason', 'the agent or its function changed after approval ' || previous_id) ELSE '{}' END);
  PERFORM orchestration.refresh_run(node.run_id);
END
$$;
COMMENT ON FUNCTION orchestration.request_approval(bigint, integer, jsonb) IS
  'Internal (scheduler): puts a claimed node still PENDING in WAITING_APPROVAL, with the input it will run with, and a PENDING approval that expires after approval_timeout_seconds (0: never) and pins the agent as it is now (agent_pin); the event says when an earlier approval no longer counts because the agent changed';

CREATE FUNCTION orchestration.agent_pin(agent_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT md5(orchestration.agent_json(a)::text || coalesce(
           (SELECT ROW(p.oid, p.proowner, p.prolang, p.prosecdef, p.proconfig, p.prosrc, p.probin)::text
            FROM pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure(a.rule_function)), ''))
  FROM orchestration.agents a WHERE a.id = agent_id
$$;
COMMENT ON FUNCTION orchestration.agent_pin(bigint) IS
  'Internal: a digest of what an approval lets run, the agent''s definition and, for a RULE agent, its function''s; an approved node runs only while it is unchanged, else it is asked about again';

CREATE OR REPLACE FUNCTION orchestration.fail_node(node_id bigint, error text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  run_status orchestration.run_status;
BEGIN
  PERFORM orchestration.start_run_of(node_id);
  -- Only a node that has not ended: one skipped by an earlier failure of its run (in the
  -- same claim round, say) stays skipped.
  UPDATE orchestration.workflow_run_nodes n
     SET status = 'FAILED', error = fail_node.error, finished_at = clock_timestamp()
   WHERE n.id = node_id AND n.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL')
  RETURNING * INTO node;
  IF NOT FOUND THEN
    RETURN;
  END IF;
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
  PERFORM orchestration.skip_unstarted_nodes(node.run_id);
  PERFORM orchestration.emit_event(node.project_id, 'run', 'failed', node.run_id, NULL,
            jsonb_build_object('status', 'FAILED', 'error',
                               format('node "%s" failed: %s', node.node_key, fail_node.error)));
END
$$;
COMMENT ON FUNCTION orchestration.fail_node(bigint, text) IS
  'Internal: fails a node that has not ended (PENDING, RUNNING, WAITING_APPROVAL; else does nothing) for good, fails its run and skips every node of the run that has not started';

CREATE OR REPLACE FUNCTION orchestration.start_container_node(node_id bigint, input jsonb, container_name text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  span text;  -- the attempt's traceparent
BEGIN
  IF NOT orchestration.lock_live_run_of(node_id, true) THEN
    RETURN NULL;  -- another worker failed the run meanwhile: nothing starts
  END IF;
  span := orchestration.child_traceparent(
    (SELECT r.traceparent FROM orchestration.workflow_runs r
     WHERE r.id = (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = node_id)));
  UPDATE orchestration.workflow_run_nodes n SET
    status = 'RUNNING', resolved_input = input, container_name = start_container_node.container_name,
    attempt_traceparent = span,
    started_at = coalesce(n.started_at, clock_timestamp()), next_attempt_at = NULL
  WHERE n.id = node_id AND n.status = 'PENDING' RETURNING * INTO node;
  IF NOT FOUND THEN
    RETURN NULL;  -- an earlier node of the same claim round ended its run: nothing starts
  END IF;
  PERFORM orchestration.emit_event(node.project_id, 'node', 'started', node.run_id, node.node_key,
            jsonb_build_object('status', 'RUNNING', 'attempt', node.attempt + 1, 'container', container_name,
                               'traceparent', span));
  RETURN span;
END
$$;
COMMENT ON FUNCTION orchestration.start_container_node(bigint, jsonb, text) IS
  'Internal (scheduler): a container node is RUNNING, under the container name its attempt will have; returns the attempt''s traceparent (a child span of the run''s trace, also in the node.started event), or NULL, starting nothing, when the node is no longer PENDING (an earlier node of its claim round ended the run). Committed before the container is created, so that after a crash the node says which container to look for';

CREATE OR REPLACE FUNCTION orchestration.retry_run(run_id bigint) RETURNS void
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
  -- The retry is a span of its own, in the same trace: the first ending's span was sent
  -- already, and a span id is sent once.
  UPDATE orchestration.workflow_runs r SET status = 'RUNNING', finished_at = NULL, error = NULL,
    traceparent = orchestration.child_traceparent(r.traceparent)
  WHERE r.id = run_id;
  PERFORM orchestration.emit_event((target.run).project_id, 'run', 'retried', run_id, NULL,
            jsonb_build_object('status', 'RUNNING', 'retried_by', target.caller));
  PERFORM orchestration.wake_scheduler();
END
$$;
COMMENT ON FUNCTION orchestration.retry_run(bigint) IS
  'Continues a FAILED run from its failed nodes: they (and the nodes skipped because of the failure) run again; successful nodes are not run again. The retry is a new span of the run''s trace. Requires orchestration_operator and the project';

-- New arguments, idempotency_key and priority (the Python client, issue 15).
DROP FUNCTION orchestration.start_workflow(integer, text, jsonb);
CREATE OR REPLACE FUNCTION orchestration.start_workflow(project_id integer, workflow text, context jsonb DEFAULT '{}',
                                             idempotency_key text DEFAULT NULL, priority integer DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  caller name := orchestration.authorize(project_id, 'orchestration_operator');
  target orchestration.workflows;
  run_id bigint;
BEGIN
  -- NULL is a mistake of the caller's, not "nothing": say so rather than start with {}.
  IF workflow IS NULL THEN
    RAISE EXCEPTION 'workflow name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF context IS NULL THEN
    RAISE EXCEPTION 'run context must be a JSON object, not NULL'
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Pass ''{}'' (or leave the argument out) for an empty context.';
  END IF;
  IF idempotency_key IS NOT NULL AND NOT length(idempotency_key) BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION 'an idempotency key must be 1 to 255 characters, not %', length(idempotency_key)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use an id of the request that starts the run, such as a UUID.';
  END IF;
  IF priority IS NULL OR NOT priority BETWEEN -1000 AND 1000 THEN
    RAISE EXCEPTION 'priority must be between -1000 and 1000, not %', coalesce(priority::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Higher runs first; 0 is the default.';
  END IF;
  SELECT * INTO target FROM orchestration.workflows w
  WHERE w.project_id = start_workflow.project_id AND w.name = start_workflow.workflow;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'workflow "%" does not exist in project %', workflow, project_id
      USING ERRCODE = 'undefined_object';
  END IF;
  IF idempotency_key IS NULL THEN
    RETURN orchestration.create_run(target, 'manual', context, caller, NULL, priority);
  END IF;
  -- A key the project has used: that start again, so that run. A start with the key that
  -- has not committed yet makes the insert below wait for it (the unique index), then
  -- fail: the loop looks again, now seeing its run.
  FOR attempt IN 1..2 LOOP
    run_id := orchestration.run_of_idempotency_key(target, context, idempotency_key);
    IF run_id IS NOT NULL THEN
      RETURN run_id;
    END IF;
    BEGIN
      RETURN orchestration.create_run(target, 'manual', context, caller, idempotency_key, priority);
    EXCEPTION WHEN unique_violation THEN
      IF attempt = 2 THEN
        RAISE;
      END IF;
    END;
  END LOOP;
END
$$;
COMMENT ON FUNCTION orchestration.start_workflow(integer, text, jsonb, text, integer) IS
  'Starts a run of an ACTIVE workflow with a context (a JSON object templates read as {{ context.<key> }}; a "traceparent" in it continues that trace) and returns the run id. With an idempotency_key the project has used before, returns that run instead (the same workflow and context, or an error), so a caller can retry a start safely. The nodes of runs with a higher priority (-1000 to 1000, default 0) are claimed first. Runs in the caller''s transaction: a rollback leaves no run. Requires orchestration_operator and the project';

-- wait_for_run gains until, a timeout in seconds, and a form for several runs.
DROP FUNCTION orchestration.wait_for_run(bigint, interval);
CREATE FUNCTION orchestration.written_in_this_transaction(row_xmin xid) RETURNS boolean
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'orch_written_in_this_transaction';
COMMENT ON FUNCTION orchestration.written_in_this_transaction(xid) IS
  'Internal (wait_for_runs): whether a row version with this xmin was written by the current transaction or one of its subtransactions';

CREATE FUNCTION orchestration.sleep_until_change(max_seconds double precision) RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'orch_sleep_until_change';
COMMENT ON FUNCTION orchestration.sleep_until_change(double precision) IS
  'Internal (wait_for_runs): the first call of a transaction starts watching this database and returns at once; later calls sleep until a commit here changes a run or a node, max_seconds pass, or the query is cancelled';

-- Waiting sleeps on the backend's latch, which every commit that writes events in this
-- database sets (sleep_until_change): no polling, and the wait ends within a moment of the
-- commit it waits for. It reads the runs as the caller (row-level security applies).
CREATE OR REPLACE FUNCTION orchestration.wait_for_runs(run_ids bigint[], timeout interval DEFAULT '60 seconds',
                                            until text DEFAULT 'settled')
RETURNS SETOF jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (it looks at its runs again at every wake-up).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  ended text[];
  deadline timestamptz;
  missing bigint;
  waiting integer;
BEGIN
  IF run_ids IS NULL OR array_position(run_ids, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'run ids must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF timeout IS NULL OR until IS NULL THEN
    RAISE EXCEPTION 'wait_for_run: % must not be NULL', CASE WHEN timeout IS NULL THEN 'timeout' ELSE 'until' END
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF timeout < interval '0' THEN
    RAISE EXCEPTION 'wait_for_run: timeout must not be negative (%)', timeout USING ERRCODE = 'invalid_parameter_value';
  END IF;
  ended := CASE until WHEN 'settled' THEN ARRAY['SUCCESS', 'FAILED', 'CANCELLED', 'WAITING_APPROVAL']
                      WHEN 'finished' THEN ARRAY['SUCCESS', 'FAILED', 'CANCELLED'] END;
  IF ended IS NULL THEN
    RAISE EXCEPTION 'wait_for_run: until must be settled or finished, not "%"', until
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'settled: until the run has ended or waits for an approval; finished: until it has ended.';
  END IF;
  SELECT u.id INTO missing FROM unnest(run_ids) u(id)
  WHERE NOT EXISTS (SELECT 1 FROM orchestration.workflow_runs r WHERE r.id = u.id) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'run % does not exist', missing USING ERRCODE = 'undefined_object';
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'wait_for_run needs READ COMMITTED; in % isolation it would never see the run change',
                    upper(current_setting('transaction_isolation'))
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- Started, approved, cancelled... in this transaction (or one of its savepoints): the
  -- workers see that only after COMMIT, and meanwhile this transaction holds the run.
  SELECT r.id INTO missing FROM orchestration.workflow_runs r
  WHERE r.id = ANY (run_ids) AND orchestration.written_in_this_transaction(r.xmin) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'run % was started or changed in this transaction; the scheduler sees that only after COMMIT', missing
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Commit first, then call wait_for_run in a new transaction.';
  END IF;
  deadline := clock_timestamp() + timeout;
  -- Watch before looking: a change committed after this is sure to end a sleep below.
  PERFORM orchestration.sleep_until_change(0);
  LOOP
    SELECT count(*) INTO waiting FROM orchestration.workflow_runs r
    WHERE r.id = ANY (run_ids) AND NOT r.status::text = ANY (ended);
    EXIT WHEN waiting = 0 OR clock_timestamp() >= deadline;
    PERFORM orchestration.sleep_until_change(extract(epoch FROM deadline - clock_timestamp())::float8);
  END LOOP;
  RETURN QUERY
    SELECT CASE WHEN s.summary->>'status' = ANY (ended) THEN s.summary ELSE s.summary || '{"timed_out": true}' END
    FROM (SELECT orchestration.run_json(u.id) AS summary, u.position
          FROM unnest(run_ids) WITH ORDINALITY u(id, position)) s
    ORDER BY s.position;
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_runs(bigint[], interval, text) IS
  'Blocks until every run is settled (SUCCESS, FAILED, CANCELLED or WAITING_APPROVAL; until => ''finished'': SUCCESS, FAILED or CANCELLED) or the timeout passes, then returns each run''s summary (run_json) in the order given, with "timed_out": true on those still going. Woken by the commit that changes a run, not by polling. Needs READ COMMITTED and committed runs';

-- The timeout as a number of seconds, as a driver sends a number: wait_for_runs(ids, 30).
-- A text form, below, keeps wait_for_runs(ids, '30 seconds') unambiguous (PostgreSQL
-- prefers the text candidate for a quoted literal), and reads either spelling.
CREATE FUNCTION orchestration.wait_for_runs(run_ids bigint[], timeout_seconds double precision,
                                            until text DEFAULT 'settled')
RETURNS SETOF jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF timeout_seconds IS NULL OR timeout_seconds = 'NaN' OR timeout_seconds < 0 OR timeout_seconds = 'Infinity' THEN
    RAISE EXCEPTION 'wait_for_run: timeout must be a number of seconds of 0 or more, not %', coalesce(timeout_seconds::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY SELECT * FROM orchestration.wait_for_runs(run_ids, make_interval(secs => timeout_seconds), until);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_runs(bigint[], double precision, text) IS
  'wait_for_runs with the timeout in seconds (a number)';

CREATE FUNCTION orchestration.wait_for_runs(run_ids bigint[], timeout text, until text DEFAULT 'settled')
RETURNS SETOF jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  wait_time interval;
BEGIN
  IF timeout ~ '^\s*[0-9]+(\.[0-9]*)?\s*$' THEN
    RETURN QUERY SELECT * FROM orchestration.wait_for_runs(run_ids, timeout::float8, until);
    RETURN;
  END IF;
  BEGIN
    wait_time := timeout::interval;
  EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
    RAISE EXCEPTION 'wait_for_run: timeout must be an interval or a number of seconds, not "%"', timeout
      USING ERRCODE = 'invalid_parameter_value', HINT = 'For example 30, ''30 seconds'' or ''2 min''.';
  END;
  RETURN QUERY SELECT * FROM orchestration.wait_for_runs(run_ids, wait_time, until);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_runs(bigint[], text, text) IS
  'wait_for_runs with the timeout written as text: an interval (''30 seconds'', ''2 min'') or a number of seconds (''30'')';

CREATE FUNCTION orchestration.wait_for_run(run_id bigint, timeout interval DEFAULT '60 seconds',
                                           until text DEFAULT 'settled')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF run_id IS NULL THEN
    RAISE EXCEPTION 'run_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  RETURN (SELECT w FROM orchestration.wait_for_runs(ARRAY[run_id], timeout, until) w);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_run(bigint, interval, text) IS
  'Blocks until the run is settled (SUCCESS, FAILED, CANCELLED or WAITING_APPROVAL; until => ''finished'': one of the first three) or the timeout passes, and returns its summary (as run_json; "timed_out": true when the timeout passed). Woken by the commit that changes the run, not by polling. Needs READ COMMITTED and a committed run';

CREATE FUNCTION orchestration.wait_for_run(run_id bigint, timeout_seconds double precision,
                                           until text DEFAULT 'settled')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF run_id IS NULL THEN
    RAISE EXCEPTION 'run_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  RETURN (SELECT w FROM orchestration.wait_for_runs(ARRAY[run_id], timeout_seconds, until) w);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_run(bigint, double precision, text) IS
  'wait_for_run with the timeout in seconds (a number)';

CREATE FUNCTION orchestration.wait_for_run(run_id bigint, timeout text,
                                           until text DEFAULT 'settled')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF run_id IS NULL THEN
    RAISE EXCEPTION 'run_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  RETURN (SELECT w FROM orchestration.wait_for_runs(ARRAY[run_id], timeout, until) w);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_run(bigint, text, text) IS
  'wait_for_run with the timeout written as text: an interval (''30 seconds'', ''2 min'') or a number of seconds (''30'')';

-- By name: a person knows an agent by its project and name. find_agent gives the id every
-- id-taking function accepts; the forms below take the name directly. They run as the
-- caller: an agent of a project the caller lacks does not exist for it, and the
-- functions they call check the rest.
CREATE FUNCTION orchestration.find_agent(project_id integer, name text) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  found_id bigint;
BEGIN
  IF project_id IS NULL OR name IS NULL THEN
    RAISE EXCEPTION 'find_agent: project_id and name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT a.id INTO found_id FROM orchestration.agents a
  WHERE a.project_id = find_agent.project_id AND a.name = find_agent.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'agent "%" does not exist in project %', name, project_id USING ERRCODE = 'undefined_object';
  END IF;
  RETURN found_id;
END
$$;
COMMENT ON FUNCTION orchestration.find_agent(integer, text) IS
  'The id of the agent with this name in this project (for any function that takes an agent id); an error if there is none, or the caller lacks the project';

CREATE FUNCTION orchestration.get_agent(project_id integer, name text) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.get_agent(orchestration.find_agent(project_id, name)) $$;
COMMENT ON FUNCTION orchestration.get_agent(integer, text) IS
  'get_agent by project and name';

CREATE FUNCTION orchestration.update_agent(project_id integer, name text, spec jsonb) RETURNS jsonb
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.update_agent(orchestration.find_agent(project_id, name), spec) $$;
COMMENT ON FUNCTION orchestration.update_agent(integer, text, jsonb) IS
  'update_agent by project and name';

CREATE FUNCTION orchestration.delete_agent(project_id integer, name text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.delete_agent(orchestration.find_agent(project_id, name)) $$;
COMMENT ON FUNCTION orchestration.delete_agent(integer, text) IS
  'delete_agent by project and name';

-- By name, as for agents (find_agent).
CREATE FUNCTION orchestration.find_workflow(project_id integer, name text) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  found_id bigint;
BEGIN
  IF project_id IS NULL OR name IS NULL THEN
    RAISE EXCEPTION 'find_workflow: project_id and name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT w.id INTO found_id FROM orchestration.workflows w
  WHERE w.project_id = find_workflow.project_id AND w.name = find_workflow.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'workflow "%" does not exist in project %', name, project_id USING ERRCODE = 'undefined_object';
  END IF;
  RETURN found_id;
END
$$;
COMMENT ON FUNCTION orchestration.find_workflow(integer, text) IS
  'The id of the workflow with this name in this project (for any function that takes a workflow id: workflow_graph, workflow_levels, ...); an error if there is none, or the caller lacks the project';

CREATE FUNCTION orchestration.get_workflow(project_id integer, name text) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.get_workflow(orchestration.find_workflow(project_id, name)) $$;
COMMENT ON FUNCTION orchestration.get_workflow(integer, text) IS
  'get_workflow by project and name';

CREATE FUNCTION orchestration.update_workflow(project_id integer, name text, spec jsonb) RETURNS jsonb
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.update_workflow(orchestration.find_workflow(project_id, name), spec) $$;
COMMENT ON FUNCTION orchestration.update_workflow(integer, text, jsonb) IS
  'update_workflow by project and name';

CREATE FUNCTION orchestration.archive_workflow(project_id integer, name text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.archive_workflow(orchestration.find_workflow(project_id, name)) $$;
COMMENT ON FUNCTION orchestration.archive_workflow(integer, text) IS
  'archive_workflow by project and name';

-- Runs as a person looks for them: newest first, filtered by what they know. Row-level
-- security leaves out the projects the caller lacks.
CREATE FUNCTION orchestration.list_runs(project_id integer DEFAULT NULL, status text DEFAULT NULL,
                                        workflow text DEFAULT NULL, since timestamptz DEFAULT NULL,
                                        max_rows integer DEFAULT 100)
RETURNS SETOF orchestration.run_summary
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF status IS NOT NULL AND NOT status = ANY (enum_range(NULL::orchestration.run_status)::text[]) THEN
    RAISE EXCEPTION 'list_runs: no run status "%"', status
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A run is one of ' || array_to_string(enum_range(NULL::orchestration.run_status)::text[], ', ') || '.';
  END IF;
  IF max_rows IS NULL OR max_rows < 0 THEN
    RAISE EXCEPTION 'list_runs: max_rows must be 0 or more' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The page of runs first, then their summaries: the view counts nodes of these runs only.
  RETURN QUERY
    SELECT s.*
    FROM (SELECT r.id FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
          WHERE (list_runs.project_id IS NULL OR r.project_id = list_runs.project_id)
            AND (list_runs.status IS NULL OR r.status::text = list_runs.status)
            AND (list_runs.workflow IS NULL OR w.name = list_runs.workflow)
            AND (list_runs.since IS NULL OR r.created_at >= list_runs.since)
          ORDER BY r.id DESC
          LIMIT max_rows) page,
         LATERAL (SELECT * FROM orchestration.run_summary v WHERE v.run_id = page.id) s
    ORDER BY s.run_id DESC;
END
$$;
COMMENT ON FUNCTION orchestration.list_runs(integer, text, text, timestamptz, integer) IS
  'Runs newest first, as run_summary rows, filtered by project, status, workflow name and creation time (each NULL: any), at most max_rows (100). Only the projects the caller has';

-- Answering by run and node, as an approver knows them ("approve build 7's deploy").
-- The approval is looked up as the caller (row-level security) and answered by approve
-- and reject, which check who may answer.
CREATE FUNCTION orchestration.pending_approval_of(run_id bigint, node_key text) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node_status text;
  approval_id bigint;
BEGIN
  IF run_id IS NULL OR node_key IS NULL THEN
    RAISE EXCEPTION 'run_id and node_key must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM orchestration.workflow_runs r WHERE r.id = pending_approval_of.run_id) THEN
    RAISE EXCEPTION 'run % does not exist', run_id USING ERRCODE = 'undefined_object';
  END IF;
  SELECT n.status::text INTO node_status FROM orchestration.workflow_run_nodes n
  WHERE n.run_id = pending_approval_of.run_id AND n.node_key = pending_approval_of.node_key;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'run % has no node "%"', run_id, node_key USING ERRCODE = 'undefined_object',
      HINT = (SELECT 'Its nodes: ' || string_agg(n.node_key, ', ' ORDER BY n.level, n.node_key) || '.'
              FROM orchestration.workflow_run_nodes n WHERE n.run_id = pending_approval_of.run_id);
  END IF;
  SELECT a.id INTO approval_id FROM orchestration.workflow_approvals a
  WHERE a.run_id = pending_approval_of.run_id AND a.node_key = pending_approval_of.node_key AND a.status = 'PENDING'
  ORDER BY a.id DESC LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'node "%" of run % is not waiting for an approval (it is %)', node_key, run_id, node_status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN approval_id;
END
$$;
COMMENT ON FUNCTION orchestration.pending_approval_of(bigint, text) IS
  'The id of the approval a node of a run is waiting for; an error saying why when there is none';

CREATE FUNCTION orchestration.approve_node(run_id bigint, node_key text, notes text DEFAULT NULL) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.approve(orchestration.pending_approval_of(run_id, node_key), notes) $$;
COMMENT ON FUNCTION orchestration.approve_node(bigint, text, text) IS
  'approve by run and node: approves the approval that node is waiting for';

CREATE FUNCTION orchestration.reject_node(run_id bigint, node_key text, notes text DEFAULT NULL) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.reject(orchestration.pending_approval_of(run_id, node_key), notes) $$;
COMMENT ON FUNCTION orchestration.reject_node(bigint, text, text) IS
  'reject by run and node: rejects the approval that node is waiting for';

-- What a LISTENer reads after a notification: the events after the last id it saw, those
-- of its projects (row-level security), oldest first. Ids grow with time but may commit
-- out of order, so a listener that must see every event re-reads a few ids back (see the
-- README) or reads the NATS stream.
CREATE FUNCTION orchestration.events_after(after_id bigint, max_rows integer DEFAULT 1000)
RETURNS TABLE (id bigint, project_id integer, type text, subject text, run_id bigint, payload jsonb,
               created_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF after_id IS NULL OR max_rows IS NULL OR max_rows < 0 THEN
    RAISE EXCEPTION 'events_after: after_id must not be NULL and max_rows must be 0 or more'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Start from 0 to read every event kept.';
  END IF;
  RETURN QUERY
    SELECT e.id, e.project_id, e.type, e.subject, e.run_id, e.payload, e.created_at
    FROM orchestration.events e WHERE e.id > after_id ORDER BY e.id LIMIT max_rows;
END
$$;
COMMENT ON FUNCTION orchestration.events_after(bigint, integer) IS
  'The events after an id (oldest first, at most max_rows), of the projects the caller has: what a LISTEN orchestration_events client reads after each notification';

CREATE OR REPLACE FUNCTION orchestration.cancel_run(run_id bigint, reason text DEFAULT NULL) RETURNS void
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
    WITH changed AS (
      UPDATE orchestration.workflow_run_nodes n
         SET status = 'CANCELLED', error = message, finished_at = clock_timestamp()
       WHERE n.run_id = cancel_run.run_id AND n.status IN ('PENDING', 'WAITING_APPROVAL')
      RETURNING *)
    SELECT * FROM changed ORDER BY level, node_key
  LOOP
    PERFORM orchestration.emit_event(cancelled.project_id, 'node', 'cancelled', run_id,
              cancelled.node_key, jsonb_build_object('status', 'CANCELLED'));
  END LOOP;
  UPDATE orchestration.workflow_approvals a
     SET status = 'REJECTED', responded_at = now(), notes = 'run ' || message
   WHERE a.run_id = cancel_run.run_id AND a.status = 'PENDING';
  PERFORM orchestration.emit_event((target.run).project_id, 'run', 'cancelled', run_id, NULL,
            jsonb_build_object('status', 'CANCELLED', 'error', message));
  PERFORM orchestration.wake_scheduler();
END
$$;
COMMENT ON FUNCTION orchestration.cancel_run(bigint, text) IS
  'Cancels a live run: no node starts any more, running containers are stopped, waiting approvals are closed, and the run ends CANCELLED with the reason. Requires orchestration_operator and the project';

CREATE FUNCTION orchestration.rule_call() RETURNS jsonb
-- PARALLEL RESTRICTED: a parallel worker would not know the RULE attempt.
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'orch_rule_call';
COMMENT ON FUNCTION orchestration.rule_call() IS
  'Inside a RULE agent''s function: what it was called for, {"capability", "agent", "run_id", "node_key", "attempt"} (one function can serve several capabilities); NULL anywhere else';

-- For deploy scripts: the agent as the spec says, whether or not it exists. The same
-- spec again, put by the role the agent runs as, changes nothing (not even updated_at)
-- and returns the same id. A RULE agent runs as whoever last set it, so a put by another
-- role is a change: it vouches anew, and update_agent checks that role may run the
-- function. The no-op path reads without a lock: an open transaction after it holds
-- nothing the workers' foreign-key checks wait on.
CREATE FUNCTION orchestration.put_agent(project_id integer, spec jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := orchestration.authorize(project_id, 'orchestration_admin');
  normalized jsonb;
  existing orchestration.agents;
BEGIN
  IF spec IS NULL THEN
    RAISE EXCEPTION 'agent spec must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  normalized := orchestration.normalize_agent_spec(spec);
  FOR round IN 1..2 LOOP
    SELECT * INTO existing FROM orchestration.agents a
    WHERE a.project_id = put_agent.project_id AND a.name = normalized->>'name';
    IF NOT FOUND THEN
      BEGIN
        RETURN orchestration.register_agent(project_id, spec);
      EXCEPTION WHEN unique_violation THEN
        IF round = 2 THEN
          RAISE;
        END IF;
        CONTINUE;  -- a concurrent put registered it first: compare with theirs
      END;
    END IF;
    IF existing.spec_digest IS NOT DISTINCT FROM md5(normalized::text)
       AND (existing.runs_as IS NULL OR existing.runs_as = caller) THEN
      RETURN existing.id;
    END IF;
    PERFORM orchestration.update_agent(existing.id, spec);
    RETURN existing.id;
  END LOOP;
END
$$;
COMMENT ON FUNCTION orchestration.put_agent(integer, jsonb) IS
  'Registers the agent, or updates the one of that name to the spec; the same spec again, by the role a RULE agent runs as, changes nothing. Returns its id either way (for deploy scripts). Requires orchestration_admin and the project';

-- For deploy scripts, as put_agent: a changed spec is a new version of the workflow
-- (runs already started keep theirs); the same spec again, put by the role that last set
-- it (updated_by, who vouches for its trigger), changes nothing.
CREATE FUNCTION orchestration.put_workflow(project_id integer, spec jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := orchestration.authorize(project_id, 'orchestration_admin');
  normalized jsonb;
  existing orchestration.workflows;
BEGIN
  IF spec IS NULL THEN
    RAISE EXCEPTION 'workflow spec must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  normalized := orchestration.normalize_workflow_spec(spec);
  FOR round IN 1..2 LOOP
    SELECT * INTO existing FROM orchestration.workflows w
    WHERE w.project_id = put_workflow.project_id AND w.name = normalized->>'name';
    IF NOT FOUND THEN
      BEGIN
        RETURN orchestration.create_workflow(project_id, spec);
      EXCEPTION WHEN unique_violation THEN
        IF round = 2 THEN
          RAISE;
        END IF;
        CONTINUE;  -- a concurrent put created it first: compare with theirs
      END;
    END IF;
    IF existing.spec_digest IS NOT DISTINCT FROM md5(normalized::text) AND existing.updated_by = caller THEN
      RETURN existing.id;
    END IF;
    PERFORM orchestration.update_workflow(existing.id, spec);
    RETURN existing.id;
  END LOOP;
END
$$;
COMMENT ON FUNCTION orchestration.put_workflow(integer, jsonb) IS
  'Creates the workflow, or updates the one of that name to the spec as a new version (runs already started keep theirs); the same spec again, by the role that last set it, changes nothing. Returns its id either way (for deploy scripts). Requires orchestration_admin and the project';

CREATE OR REPLACE FUNCTION orchestration.archive_workflow(workflow_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.workflow_for_write(workflow_id);
BEGIN
  -- No longer the spec last put: putting it again brings the workflow back.
  UPDATE orchestration.workflows w SET status = 'ARCHIVED', updated_at = now(), spec_digest = NULL
  WHERE w.id = archive_workflow.workflow_id;
END
$$;

CREATE OR REPLACE FUNCTION orchestration.approve(approval_id bigint, notes text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  approval orchestration.workflow_approvals := orchestration.answer_approval(approval_id, 'APPROVED', notes);
BEGIN
  UPDATE orchestration.workflow_run_nodes n SET status = 'PENDING'
   WHERE n.id = approval.run_node_id AND n.status = 'WAITING_APPROVAL';
  PERFORM orchestration.refresh_run(approval.run_id);
  PERFORM orchestration.wake_scheduler();
END
$$;

CREATE OR REPLACE FUNCTION orchestration.expire_approvals() RETURNS integer
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
    -- The run's row first, for writing (see the lock order in 70_runs.sql); a run someone
    -- else is changing right now is left for the next pass.
    PERFORM 1 FROM orchestration.workflow_runs r WHERE r.id = due.run_id
      FOR NO KEY UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    UPDATE orchestration.workflow_approvals a
       SET status = 'REJECTED', responded_at = now(),
           notes = format('expired: no answer within %s', a.expires_at - a.requested_at)
     WHERE a.id = due.id AND a.status = 'PENDING'
    RETURNING * INTO expired;
    CONTINUE WHEN NOT FOUND;
    PERFORM orchestration.emit_event(expired.project_id, 'approval', 'expired',
              expired.run_id, expired.node_key,
              jsonb_build_object('approval_id', expired.id, 'status', 'REJECTED', 'notes', expired.notes));
    PERFORM orchestration.fail_node(expired.run_node_id, 'approval ' || expired.id || ' ' || expired.notes);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION orchestration.expire_approvals() IS
  'Internal (scheduler): rejects PENDING approvals past their expires_at (orchestration.approval_timeout after the request) and fails their nodes';

CREATE OR REPLACE FUNCTION orchestration.queue_attempt_spans() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF orchestration.tracing_enabled() THEN
    INSERT INTO orchestration.span_queue (span)
    SELECT orchestration.otlp_span(
             a.traceparent, r.traceparent, a.agent_name || '.' || n.action, a.started_at, a.finished_at,
             a.status <> 'SUCCESS', a.error,
             jsonb_build_object('orchestration.project_id', a.project_id, 'orchestration.run_id', a.run_id,
                                'orchestration.node', n.node_key, 'orchestration.attempt', a.attempt,
                                'orchestration.agent', a.agent_name, 'orchestration.action', n.action,
                                'container.id', a.container_id, 'process.exit.code', a.exit_code))
    FROM attempts a
    JOIN orchestration.workflow_run_nodes n ON n.id = a.run_node_id
    JOIN orchestration.workflow_runs r ON r.id = a.run_id
    WHERE a.traceparent IS NOT NULL
    ORDER BY a.id;
    PERFORM orchestration.wake_relay();
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION orchestration.run_json(run_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT jsonb_build_object(
           'run_id', r.id, 'project_id', r.project_id, 'workflow', w.name,
           'workflow_version', r.workflow_version, 'status', r.status, 'error', r.error,
           'trigger', r.trigger, 'started_by', r.started_by, 'traceparent', r.traceparent,
           'idempotency_key', r.idempotency_key, 'priority', r.priority,
           'created_at', r.created_at, 'started_at', r.started_at, 'finished_at', r.finished_at,
           'duration_ms', (extract(epoch FROM r.finished_at - r.started_at) * 1000)::bigint,
           'nodes', coalesce((
             SELECT jsonb_agg(jsonb_build_object(
                      'node_key', n.node_key, 'status', n.status, 'attempt', n.attempt,
                      'output', n.output, 'error', n.error, 'skip_reason', n.skip_reason,
                      'started_at', n.started_at, 'finished_at', n.finished_at,
                      'duration_ms', (extract(epoch FROM n.finished_at - n.started_at) * 1000)::bigint)
                    ORDER BY n.level, n.node_key)
             FROM orchestration.workflow_run_nodes n WHERE n.run_id = r.id), '[]'))
  FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
  WHERE r.id = run_json.run_id);
END
$$;
COMMENT ON FUNCTION orchestration.run_json(bigint) IS
  'A run''s summary as JSON: status, error, timings, and each node''s status, attempt, output, error and timings';

CREATE OR REPLACE FUNCTION orchestration.agent_for_write(agent_id bigint, OUT agent orchestration.agents, OUT caller name)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- NO KEY UPDATE: serializes changes of the agent without holding up the foreign-key
  -- checks (KEY SHARE) of runs and attempts that refer to it while the caller's
  -- transaction stays open.
  SELECT * INTO agent FROM orchestration.agents a WHERE a.id = agent_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'agent % does not exist', coalesce(agent_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  caller := orchestration.authorize(agent.project_id, 'orchestration_admin', object => 'agent ' || agent_id);
END
$$;

CREATE OR REPLACE FUNCTION orchestration.workflow_for_write(workflow_id bigint, OUT workflow orchestration.workflows, OUT caller name)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- NO KEY UPDATE, as agent_for_write: runs' foreign-key checks do not wait on it.
  SELECT * INTO workflow FROM orchestration.workflows w WHERE w.id = workflow_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'workflow % does not exist', coalesce(workflow_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  caller := orchestration.authorize(workflow.project_id, 'orchestration_admin',
                                    object => 'workflow ' || workflow_id);
END
$$;

-- Whether a role has a project: a grant to it or to a role it belongs to.
CREATE FUNCTION orchestration.role_in_project(role name, project_id integer) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM orchestration.project_grants g
                 WHERE g.project_id = role_in_project.project_id AND pg_has_role(role_in_project.role, g.role, 'USAGE'));
END
$$;
COMMENT ON FUNCTION orchestration.role_in_project(name, integer) IS
  'Internal (authorize, may_run_as): whether the role, or a role it belongs to, has been granted the project';

-- A RULE agent runs as the role that last set its function, which vouched for it then
-- with orchestration_admin and the project. One that has lost either since vouches for
-- nothing: it may still change the function, and must not see the project's inputs.
CREATE FUNCTION orchestration.may_run_as(role name, project_id integer) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN coalesce((SELECT r.rolsuper OR (pg_has_role(r.oid, 'orchestration_admin', 'USAGE')
                                         AND orchestration.role_in_project(may_run_as.role, may_run_as.project_id))
                   FROM pg_catalog.pg_roles r WHERE r.rolname = may_run_as.role), false);
END
$$;
COMMENT ON FUNCTION orchestration.may_run_as(name, integer) IS
  'Internal (RULE workers, before every attempt): whether a RULE agent''s runs_as role is still a superuser, or an orchestration_admin with the project';

CREATE OR REPLACE FUNCTION orchestration.authorize(project_id integer, required_role name, who name DEFAULT NULL,
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
  IF NOT orchestration.role_in_project(caller, project_id) THEN
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

-- Privileges of the functions added (90_privileges.sql revokes everything from PUBLIC and
-- grants the API).
REVOKE ALL ON FUNCTION orchestration.calling_login() FROM PUBLIC;
REVOKE ALL ON FUNCTION orchestration.in_rule_attempt() FROM PUBLIC;
REVOKE ALL ON FUNCTION orchestration.start_run_from_trigger(oid, text, text, text, jsonb, jsonb, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION orchestration.note_crash(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION orchestration.agent_pin(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION orchestration.claim_nodes(integer, integer, integer, bigint[], text, integer[], integer, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orchestration.calling_login(), orchestration.in_rule_attempt()
  TO orchestration_admin, orchestration_operator, orchestration_approver;
REVOKE ALL ON FUNCTION orchestration.sleep_until_change(double precision),
  orchestration.wait_for_runs(bigint[], interval, text), orchestration.wait_for_run(bigint, interval, text),
  orchestration.wait_for_runs(bigint[], double precision, text), orchestration.wait_for_runs(bigint[], text, text),
  orchestration.wait_for_run(bigint, double precision, text), orchestration.wait_for_run(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orchestration.sleep_until_change(double precision),
  orchestration.wait_for_runs(bigint[], interval, text), orchestration.wait_for_run(bigint, interval, text),
  orchestration.wait_for_runs(bigint[], double precision, text), orchestration.wait_for_runs(bigint[], text, text),
  orchestration.wait_for_run(bigint, double precision, text), orchestration.wait_for_run(bigint, text, text)
  TO orchestration_admin, orchestration_operator, orchestration_approver;
REVOKE ALL ON FUNCTION orchestration.find_agent(integer, text), orchestration.get_agent(integer, text),
  orchestration.find_workflow(integer, text), orchestration.get_workflow(integer, text),
  orchestration.list_runs(integer, text, text, timestamptz, integer), orchestration.events_after(bigint, integer),
  orchestration.pending_approval_of(bigint, text), orchestration.approve_node(bigint, text, text),
  orchestration.reject_node(bigint, text, text), orchestration.update_agent(integer, text, jsonb),
  orchestration.delete_agent(integer, text), orchestration.update_workflow(integer, text, jsonb),
  orchestration.archive_workflow(integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orchestration.find_agent(integer, text), orchestration.get_agent(integer, text),
  orchestration.find_workflow(integer, text), orchestration.get_workflow(integer, text),
  orchestration.list_runs(integer, text, text, timestamptz, integer), orchestration.events_after(bigint, integer),
  orchestration.pending_approval_of(bigint, text)
  TO orchestration_admin, orchestration_operator, orchestration_approver;
GRANT EXECUTE ON FUNCTION orchestration.approve_node(bigint, text, text), orchestration.reject_node(bigint, text, text)
  TO orchestration_approver;
GRANT EXECUTE ON FUNCTION orchestration.update_agent(integer, text, jsonb), orchestration.delete_agent(integer, text),
  orchestration.update_workflow(integer, text, jsonb), orchestration.archive_workflow(integer, text)
  TO orchestration_admin;
REVOKE ALL ON FUNCTION orchestration.rule_call() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orchestration.rule_call() TO orchestration_admin, orchestration_operator, orchestration_approver;
REVOKE ALL ON FUNCTION orchestration.note_started_run(bigint), orchestration.started_runs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orchestration.started_runs() TO orchestration_admin, orchestration_operator, orchestration_approver;
REVOKE ALL ON FUNCTION orchestration.put_agent(integer, jsonb), orchestration.put_workflow(integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orchestration.put_agent(integer, jsonb), orchestration.put_workflow(integer, jsonb) TO orchestration_admin;
REVOKE ALL ON FUNCTION orchestration.written_in_this_transaction(xid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orchestration.written_in_this_transaction(xid) TO orchestration_admin, orchestration_operator, orchestration_approver;
REVOKE ALL ON FUNCTION orchestration.role_in_project(name, integer), orchestration.may_run_as(name, integer) FROM PUBLIC;

-- Idempotent starts and priorities (the Python client, issue 15).
ALTER TABLE orchestration.workflow_runs ADD COLUMN idempotency_key text;
ALTER TABLE orchestration.workflow_runs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE orchestration.workflow_run_nodes ADD COLUMN priority integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN orchestration.workflow_runs.priority IS
  'start_workflow''s priority: the nodes of runs with a higher one are claimed first (then by level and age); 0 by default';
COMMENT ON COLUMN orchestration.workflow_run_nodes.priority IS
  'Its run''s priority, copied here so that the queue index (workflow_run_nodes_runnable) orders by it';
DROP INDEX orchestration.workflow_run_nodes_runnable;
CREATE INDEX workflow_run_nodes_runnable ON orchestration.workflow_run_nodes (priority DESC, level, id)
  WHERE status = 'PENDING' AND pending_deps = 0;
-- A start with a key the project has used returns that run instead of a second one.
CREATE UNIQUE INDEX workflow_runs_idempotency_key ON orchestration.workflow_runs (project_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN orchestration.workflow_runs.idempotency_key IS
  'The caller''s key for this start (start_workflow''s idempotency_key), unique in the project while the run is kept: starting again with it returns this run';

CREATE FUNCTION orchestration.run_of_idempotency_key(workflow orchestration.workflows, context jsonb, idempotency_key text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  earlier record;
BEGIN
  SELECT r.id, r.context, w.name AS workflow INTO earlier
  FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
  WHERE r.project_id = workflow.project_id AND r.idempotency_key = run_of_idempotency_key.idempotency_key;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  -- The same key for another request is the caller's bug: a silent "here is your run"
  -- would hand back a run of something else. A retry may come from another span of the
  -- caller's trace: its traceparent is not part of the request.
  IF earlier.workflow <> workflow.name OR earlier.context - 'traceparent' <> context - 'traceparent' THEN
    RAISE EXCEPTION 'idempotency key "%" was used for run % with another %', idempotency_key, earlier.id,
                    CASE WHEN earlier.workflow <> workflow.name THEN format('workflow ("%s")', earlier.workflow)
                         ELSE 'context' END
      USING ERRCODE = 'unique_violation',
            HINT = 'A key names one start request: use a new key for a new request.';
  END IF;
  RETURN earlier.id;
END
$$;
COMMENT ON FUNCTION orchestration.run_of_idempotency_key(orchestration.workflows, jsonb, text) IS
  'Internal (start_workflow): the run an idempotency key of the workflow''s project started, if the workflow and context match; an error if they do not; NULL for a new key';
REVOKE ALL ON FUNCTION orchestration.start_workflow(integer, text, jsonb, text, integer),
  orchestration.create_run(orchestration.workflows, text, jsonb, name, text, integer),
  orchestration.run_of_idempotency_key(orchestration.workflows, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orchestration.start_workflow(integer, text, jsonb, text, integer) TO orchestration_operator;

-- Metrics: containers started per project (the Prometheus endpoint's dashboard, issue 15).
CREATE OR REPLACE VIEW orchestration.metric_samples WITH (security_invoker = true) AS
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
FROM orchestration.events e WHERE e.published_at IS NULL
UNION ALL
-- A counter: each container attempt counts once, while it runs (its node holds the
-- container) and then as its recorded attempt; it drops only when runs are deleted.
SELECT 'orchestration_container_starts_total', jsonb_build_object('project', c.project_id::text), count(*)
FROM (SELECT a.project_id FROM orchestration.agent_runs a WHERE a.container_id IS NOT NULL
      UNION ALL
      SELECT n.project_id FROM orchestration.workflow_run_nodes n
      WHERE n.status = 'RUNNING' AND n.container_name IS NOT NULL) c
GROUP BY c.project_id;
COMMENT ON VIEW orchestration.metric_samples IS
  'Every metric orchestration.metrics() exports, one row per sample (metric, labels, value): runs and nodes by project and status, node duration histogram, queue depth (runnable nodes), running containers, pending approvals, outbox backlog, relay lag (age of the oldest unpublished event) and containers started per project';

CREATE OR REPLACE FUNCTION orchestration.metrics() RETURNS text
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
    ('orchestration_relay_lag_seconds', 'gauge', 'Age of the oldest event not yet published to NATS (0: none).', 8),
    ('orchestration_container_starts_total', 'counter', 'Containers started for node attempts, by project.', 9)),
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
  'The metrics of orchestration.metric_samples in the Prometheus text exposition format (version 0.0.4), what the metrics worker serves on orchestration.metrics_listen as GET /metrics; sees the caller''s projects (a superuser or a role granted every project sees all)';

-- Performance (issue 16): the events' document (in C) and notification (inlined) in one
-- place each, record_attempts as one statement with the events and the released
-- dependents, runs refreshed only when their status may change, the span trigger only
-- while tracing is on, and wake-ups targeted at the worker that runs the released nodes.
CREATE FUNCTION orchestration.event_document(project_id integer, type text, subject text, run_id bigint,
                                             node_key text, traceparent text, data jsonb,
                                             occurred_at timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_event_document';
COMMENT ON FUNCTION orchestration.event_document(integer, text, text, bigint, text, text, jsonb, timestamptz) IS
  'Internal: the CloudEvents 1.0 document of an outbox event (a new id, the source /orchestration/<database>/<project>, type, subject, the time now or occurred_at, and data: project_id, run_id, the run''s traceparent, node_key, and the fields of data, a JSON object or NULL)';

CREATE OR REPLACE FUNCTION orchestration.event_notification(id bigint, type text, run_id bigint)
RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT CASE WHEN current_setting('orchestration.notify_details', true) = 'on'
              THEN json_build_object('id', id, 'type', type, 'run_id', run_id)::text
              ELSE '' END
$$;
COMMENT ON FUNCTION orchestration.event_notification(bigint, text, bigint) IS
  'Internal: the payload of the NOTIFY orchestration_events sent for an event: empty, or with orchestration.notify_details = on its id, type and run id';

CREATE OR REPLACE FUNCTION orchestration.wake_workers(rule_nodes boolean, container_nodes boolean,
                                           project_id integer DEFAULT NULL) RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_workers';
COMMENT ON FUNCTION orchestration.wake_workers(boolean, boolean, integer) IS
  'Internal: when the current transaction commits, wakes a sleeping RULE worker of this database if rule_nodes (all of them when none sleeps; the scheduler with orchestration.rule_workers = 0) and the scheduler if container_nodes; nothing on rollback. project_id: the RULE nodes are that project''s alone (every call of the transaction naming the same one), so a worker that serves it need not look again for more';

CREATE OR REPLACE FUNCTION orchestration.wake_scheduler() RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_scheduler';
COMMENT ON FUNCTION orchestration.wake_scheduler() IS
  'Wakes this database''s scheduler worker and a RULE worker when the current transaction commits (nothing happens on rollback): wake_workers(true, true), for a change that may make nodes of either kind runnable';

CREATE OR REPLACE FUNCTION orchestration.skip_node(node_id bigint, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  queue bigint[] := ARRAY[node_id];
  reasons text[] := ARRAY[reason];
  current_id bigint;
  current_reason text;
  node orchestration.workflow_run_nodes;
  dependent orchestration.workflow_run_nodes;
BEGIN
  -- The run first: its dependents' counters are changed by other writers of the run too.
  PERFORM orchestration.start_run_of(node_id);
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
        IF dependent.pending_deps <= 1 THEN
          PERFORM orchestration.wake_workers(rule, NOT rule)
          FROM (SELECT (SELECT a.type FROM orchestration.agents a WHERE a.id = dependent.agent_id)
                       IS NOT DISTINCT FROM 'RULE' AS rule) k;
        END IF;
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
  'Internal: marks a node SKIPPED with a reason; dependents with run_if_skipped count it as done (one that becomes runnable wakes its worker at commit), the others are skipped too';

REVOKE ALL ON FUNCTION orchestration.event_document(integer, text, text, bigint, text, text, jsonb, timestamptz),
  orchestration.event_subject(bigint, text),
  orchestration.event_notification(bigint, text, bigint),
  orchestration.wake_workers(boolean, boolean, integer) FROM PUBLIC;
DROP TRIGGER attempt_spans ON orchestration.agent_runs;
CREATE TRIGGER attempt_spans AFTER INSERT ON orchestration.agent_runs
  REFERENCING NEW TABLE AS attempts FOR EACH STATEMENT
  WHEN (orchestration.tracing_enabled())
  EXECUTE FUNCTION orchestration.queue_attempt_spans();
-- Likewise for a finished run's span: no call while tracing is off.
DROP TRIGGER run_spans ON orchestration.workflow_runs;
CREATE TRIGGER run_spans AFTER UPDATE OF status ON orchestration.workflow_runs
  FOR EACH ROW WHEN (NEW.status IN ('SUCCESS', 'FAILED', 'CANCELLED') AND OLD.status IS DISTINCT FROM NEW.status
                     AND orchestration.tracing_enabled())
  EXECUTE FUNCTION orchestration.queue_run_span();

DROP FUNCTION orchestration.refresh_run(bigint);
CREATE FUNCTION orchestration.refresh_run(run_id bigint, started_at timestamptz DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
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
    started_at = coalesce(r.started_at, refresh_run.started_at, clock_timestamp()),
    finished_at = CASE WHEN next_status IN ('SUCCESS', 'FAILED') THEN clock_timestamp() END
  WHERE r.id = run_id;
  IF current_status = 'PENDING' AND refresh_run.started_at IS NOT NULL AND next_status = 'RUNNING' THEN
    RETURN;  -- its run.started event is written
  END IF;
  PERFORM orchestration.emit_event(project, 'run',
            CASE next_status WHEN 'RUNNING' THEN CASE WHEN current_status = 'PENDING' THEN 'started' ELSE 'resumed' END
                             WHEN 'SUCCESS' THEN 'succeeded' WHEN 'FAILED' THEN 'failed'
                             ELSE 'waiting_approval' END,
            run_id, NULL, jsonb_build_object('status', next_status));
END
$$;
COMMENT ON FUNCTION orchestration.refresh_run(bigint, timestamptz) IS
  'Internal: derives a live run''s status from its nodes (RUNNING while something can progress, WAITING_APPROVAL when only approvals can, SUCCESS or FAILED when every node is final) and emits an event when it changes; started_at: the caller started the PENDING run (wrote its run.started event), and the run started then';
REVOKE ALL ON FUNCTION orchestration.refresh_run(bigint, timestamptz) FROM PUBLIC;

-- ==== Levels from a recursive CTE (issue 16) =================================================
-- One source of truth for levels: store_workflow_nodes (above) computes them in SQL (Kahn's
-- algorithm as a recursive CTE over the stored edges); normalize_workflow_spec no longer returns a
-- "level" per node. Stored levels of existing workflows are kept: 0.1.0 computed the same
-- longest-path depth (Kahn's algorithm in C++), so nothing needs recomputing.
COMMENT ON COLUMN orchestration.workflow_nodes.level IS
  'Topological depth: 0 for nodes without dependencies, else one more than the deepest dependency, computed by store_workflow_nodes with a recursive CTE (see workflow_levels)';

COMMENT ON FUNCTION orchestration.normalize_workflow_spec(jsonb) IS
  'Validates a workflow spec (fields, node ids, depends_on, templates, conditions, no cycles, templates reading only upstream outputs) without touching the database and returns it with defaults filled in and, per node, its template references ("refs") and the nodes depending on it ("dependents"). Levels are not its business: store_workflow_nodes computes them in SQL';

COMMENT ON FUNCTION orchestration.workflow_levels(bigint) IS
  'Each node of a workflow with its topological depth (0: no dependencies; else one more than its deepest dependency), as store_workflow_nodes computed it with a recursive CTE over the edges (Kahn''s algorithm, level by level) when the workflow was defined. The scheduler dispatches runnable nodes in this order';

COMMENT ON FUNCTION orchestration.store_workflow_nodes(bigint, integer, jsonb) IS
  'Internal: replaces a workflow''s nodes with those of a normalized spec (whose graph normalize_workflow_spec checked), resolving agents and actions in the project, and computes each node''s level (its topological depth) with a recursive CTE over the stored edges: Kahn''s algorithm level by level, polynomial (edges plus, per node, the levels between its first and last dependency), never path by path';
-- ==== End of: levels from a recursive CTE (issue 16) =========================================

-- The scheduler's reads as functions (issue 16): the C++ keeps no SQL against tables and
-- reads their rows by column name.
CREATE OR REPLACE FUNCTION orchestration.writable_nodes(node_ids bigint[]) RETURNS TABLE (node_id bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.id FROM orchestration.workflow_run_nodes n
  WHERE n.id = ANY (node_ids)
    AND n.run_id = ANY (ARRAY(SELECT r.id FROM orchestration.workflow_runs r WHERE r.id IN
          (SELECT m.run_id FROM orchestration.workflow_run_nodes m WHERE m.id = ANY (node_ids))
        FOR NO KEY UPDATE OF r SKIP LOCKED))
    AND (NOT EXISTS (SELECT 1 FROM orchestration.agents a WHERE a.id = n.agent_id)
         OR n.agent_id = ANY (ARRAY(SELECT a.id FROM orchestration.agents a WHERE a.id IN
              (SELECT m.agent_id FROM orchestration.workflow_run_nodes m WHERE m.id = ANY (node_ids))
            FOR KEY SHARE OF a SKIP LOCKED)))
$$;
COMMENT ON FUNCTION orchestration.writable_nodes(bigint[]) IS
  'Internal (scheduler): of these nodes, those whose results can be recorded now, locking their runs (FOR NO KEY UPDATE) and agents (FOR KEY SHARE) and passing over those others hold';

CREATE OR REPLACE FUNCTION orchestration.cancelled_nodes(node_ids bigint[]) RETURNS TABLE (node_id bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.id FROM orchestration.workflow_run_nodes n JOIN orchestration.workflow_runs r ON r.id = n.run_id
  WHERE n.id = ANY (node_ids) AND r.status = 'CANCELLED'
$$;
COMMENT ON FUNCTION orchestration.cancelled_nodes(bigint[]) IS
  'Internal (scheduler): of these nodes (containers in flight), those whose run was cancelled';

CREATE OR REPLACE FUNCTION orchestration.running_containers()
RETURNS TABLE (node_id bigint, project_id integer, run_id bigint, node_key text, attempt integer,
               container_name text, input jsonb, started_at timestamptz, timeout_seconds integer,
               memory_mb integer, pids_limit integer, capability_id bigint, contract_version text,
               capability text, secrets text[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.id, n.project_id, n.run_id, n.node_key, n.attempt + 1, n.container_name,
         coalesce(n.resolved_input, '{}'), coalesce(n.started_at, clock_timestamp()),
         coalesce(n.timeout_seconds, a.timeout_seconds), coalesce(a.memory_mb, 256),
         coalesce(a.pids_limit, 128), c.id, c.xmin::text, a.name || '.' || n.action, a.secrets
  FROM orchestration.workflow_run_nodes n
  -- An agent or capability deleted meanwhile (by its table's owner: delete_agent refuses
  -- while a run uses it) reads as NULLs, and the scheduler fails the node saying so.
  LEFT JOIN orchestration.agents a ON a.id = n.agent_id
  LEFT JOIN orchestration.agent_capabilities c ON c.agent_id = a.id AND c.name = n.action
  WHERE n.status = 'RUNNING' AND n.container_name IS NOT NULL
$$;
COMMENT ON FUNCTION orchestration.running_containers() IS
  'Internal (scheduler): the RUNNING container nodes, with their container''s name, attempt, input, limits, capability (id and row version) and secret names, for crash recovery';

CREATE OR REPLACE FUNCTION orchestration.project_secrets(project_id integer, names text[])
RETURNS TABLE (name text, value text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT s.name, s.value FROM orchestration.secrets s WHERE s.project_id = project_secrets.project_id AND s.name = ANY (names)
$$;
COMMENT ON FUNCTION orchestration.project_secrets(integer, text[]) IS
  'Internal (scheduler): the values of a project''s secrets of these names (for a container''s environment, and to mask them in what it prints); no grants';

REVOKE ALL ON FUNCTION orchestration.writable_nodes(bigint[]), orchestration.cancelled_nodes(bigint[]),
  orchestration.running_containers(), orchestration.project_secrets(integer, text[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION orchestration.lock_run_of(node_id bigint) RETURNS orchestration.run_status
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.status FROM orchestration.workflow_runs r
  WHERE r.id = (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = lock_run_of.node_id)
  FOR NO KEY UPDATE
$$;
COMMENT ON FUNCTION orchestration.lock_run_of(bigint) IS
  'Internal: locks the row of the node''s run for a worker''s write (FOR NO KEY UPDATE; the lock order: a run''s row before its nodes) and returns the run''s status';

CREATE FUNCTION orchestration.skip_unstarted_nodes(run_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  skipped orchestration.workflow_run_nodes;
BEGIN
  -- Their events in level and key order, as every reader sees them.
  FOR skipped IN
    WITH changed AS (
      UPDATE orchestration.workflow_run_nodes n
         SET status = 'SKIPPED', skip_reason = 'run failed', finished_at = clock_timestamp()
       WHERE n.id IN (SELECT m.id FROM orchestration.workflow_run_nodes m
                      WHERE m.run_id = skip_unstarted_nodes.run_id AND m.status IN ('PENDING', 'WAITING_APPROVAL')
                      FOR UPDATE SKIP LOCKED)
         AND n.status IN ('PENDING', 'WAITING_APPROVAL')
      RETURNING *)
    SELECT * FROM changed ORDER BY level, node_key
  LOOP
    PERFORM orchestration.emit_event(skipped.project_id, 'node', 'skipped', skipped.run_id,
              skipped.node_key, jsonb_build_object('status', 'SKIPPED', 'reason', 'run failed'));
  END LOOP;
  UPDATE orchestration.workflow_approvals a
     SET status = 'REJECTED', responded_at = now(), notes = 'run failed before an answer'
   WHERE a.run_id = skip_unstarted_nodes.run_id AND a.status = 'PENDING';
END
$$;
COMMENT ON FUNCTION orchestration.skip_unstarted_nodes(bigint) IS
  'Internal: in a failed run (its row locked), skips the nodes that have not started and no other worker holds, and closes its waiting approvals';

-- A run starts (RUNNING, started_at, its run.started event) when its nodes are first
-- claimed (claim_nodes), except a one-node run claimed by a RULE worker: it starts with
-- the first write that moves its node, an attempt recorded (record_attempts, which starts
-- it with the attempt's start) or the node skipped, failed or stopped for an approval
-- (these lock the run here). Its node is claimed, run and recorded in one transaction, so
-- only its own function sees the run PENDING, and the run's row is written once when it
-- succeeds. The run.started event comes before the node's events. A container's start
-- goes through here too, for a run another claim was starting at the same moment
-- (claim_nodes passes over it).
--
-- Starting is written here, once; each caller picks and locks the runs its own way (a
-- claim passes over runs others hold, a writer waits for them in id order). The runs
-- among run_ids still PENDING become RUNNING, each started at its start_times entry (now
-- when that is NULL or missing), with their run.started events, in id order. The caller
-- holds their rows (FOR NO KEY UPDATE): this waits for no one. (record_attempts' plain
-- path for one node does not come here: it writes the run's row once, with its end.)
CREATE FUNCTION orchestration.start_runs(run_ids bigint[], start_times timestamptz[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is, for the same reasons (see there).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  started_ids bigint[];
  started_projects integer[];
  started_at_of timestamptz[];
BEGIN
  WITH started AS (
    UPDATE orchestration.workflow_runs r
       SET status = 'RUNNING', started_at = coalesce(u.start_time, clock_timestamp())
      FROM unnest(run_ids, start_times) AS u(id, start_time)
     WHERE r.id = u.id AND r.status = 'PENDING'
    RETURNING r.id, r.project_id, r.started_at
  )
  SELECT array_agg(s.id ORDER BY s.id), array_agg(s.project_id ORDER BY s.id), array_agg(s.started_at ORDER BY s.id)
    INTO started_ids, started_projects, started_at_of
  FROM started s;
  IF started_ids IS NOT NULL THEN
    PERFORM orchestration.emit_events(
              started_projects, array_fill('orchestration.run.started'::text, ARRAY[cardinality(started_ids)]),
              started_ids, array_fill(NULL::text, ARRAY[cardinality(started_ids)]),
              array_fill('{"status": "RUNNING"}'::jsonb, ARRAY[cardinality(started_ids)]), started_at_of);
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.start_runs(bigint[], timestamptz[]) IS
  'Internal (claim_nodes, record_attempts, start_run_of): starts the runs that are still PENDING among those given, whose rows the caller has locked: RUNNING, started_at (start_times, in the same order, or now), and a run.started event each, in id order';

-- For a worker's write that moves a node: locks the node's run (lock_run_of) and starts it
-- if it is PENDING (start_runs says which runs start there). Returns the run's status after.
CREATE FUNCTION orchestration.start_run_of(node_id bigint) RETURNS orchestration.run_status
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  run_status orchestration.run_status := orchestration.lock_run_of(node_id);
BEGIN
  IF run_status IS DISTINCT FROM 'PENDING' THEN
    RETURN run_status;
  END IF;
  PERFORM orchestration.start_runs(ARRAY(SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = node_id));
  RETURN 'RUNNING';
END
$$;
COMMENT ON FUNCTION orchestration.start_run_of(bigint) IS
  'Internal: locks the node''s run for a worker''s write (lock_run_of) and, if it is PENDING, starts it (RUNNING, started_at now, a run.started event) before the write moves the node; returns the run''s status after';

-- For a worker about to move a node it holds on (an approval, a container start): locks
-- the node's run (and starts it, when starting: start_run_of) and says whether it is still
-- live. A run that another worker failed while this one held the node is not; its
-- unstarted nodes, this one among them, are skipped here.
CREATE FUNCTION orchestration.lock_live_run_of(node_id bigint, starting boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  run_status orchestration.run_status;
BEGIN
  IF starting THEN
    run_status := orchestration.start_run_of(node_id);
  ELSE
    run_status := orchestration.lock_run_of(node_id);
  END IF;
  IF run_status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL') THEN
    RETURN true;
  END IF;
  PERFORM orchestration.skip_unstarted_nodes(n.run_id)
  FROM orchestration.workflow_run_nodes n WHERE n.id = node_id;
  RETURN false;
END
$$;
COMMENT ON FUNCTION orchestration.lock_live_run_of(bigint, boolean) IS
  'Internal: locks the node''s run for writing (lock_run_of; with starting, start_run_of, which starts a PENDING run) and returns whether it is live; in a run that has ended, skips the unstarted nodes (this one too) first';

REVOKE ALL ON FUNCTION orchestration.skip_unstarted_nodes(bigint), orchestration.lock_live_run_of(bigint, boolean),
  orchestration.start_run_of(bigint), orchestration.start_runs(bigint[], timestamptz[]) FROM PUBLIC;

-- agent_runs.run_id is no foreign key of its own any more (run_node_id's deletes the
-- attempt with its node, and so with its run): one check less per recorded attempt.
ALTER TABLE orchestration.agent_runs DROP CONSTRAINT agent_runs_run_id_fkey;
COMMENT ON COLUMN orchestration.agent_runs.run_id IS
  'The run of run_node_id (deleted with it, through the node)';

-- ==== Contracts: registered schemas (issue 17) ===============================================
-- Shared definitions a project registers under a URI, for its capabilities' schemas to $ref;
-- each capability records the ones it uses (none for a capability stored before: 0.1.0
-- resolved no reference to another document).
ALTER TABLE orchestration.agent_capabilities ADD COLUMN schema_refs text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN orchestration.agent_capabilities.schema_refs IS
  'The URIs of the project''s registered schemas that input_schema and output_schema use ($ref, directly or through each other); register_schema refuses to change those';

CREATE TABLE orchestration.registered_schemas (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id     integer NOT NULL CHECK (project_id > 0),
  uri            text NOT NULL,
  schema         jsonb NOT NULL,
  uses           text[] NOT NULL DEFAULT '{}',
  registered_by  name NOT NULL,
  registered_at  timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, uri)
);
COMMENT ON TABLE orchestration.registered_schemas IS
  'JSON Schemas registered in a project under an absolute URI, which its capabilities'' schemas (and its other registered schemas) may $ref. Unchangeable while a capability or another registered schema uses one. Write with register_schema/delete_schema';
COMMENT ON COLUMN orchestration.registered_schemas.uses IS
  'The URIs of the project''s other registered schemas this one uses ($ref, directly or through each other)';

ALTER TABLE orchestration.registered_schemas ENABLE ROW LEVEL SECURITY;
CREATE POLICY project_isolation ON orchestration.registered_schemas
  USING (project_id IN (SELECT orchestration.visible_projects()));
GRANT SELECT ON orchestration.registered_schemas
  TO orchestration_admin, orchestration_operator, orchestration_approver;

-- Shared definitions (registered_schemas): a project registers a schema under a URI, and
-- its capabilities' schemas $ref that URI. Nothing is fetched: a reference resolves only to
-- the built-in metaschemas and to the registered schemas of the capability's own project.
--
-- A registered schema in use cannot change: a capability's contract is what it was when
-- the capability was stored (the scheduler compiles it once per row version), and a
-- changed definition under the same URI would silently change contracts that workflows
-- already depend on. A new version is a new URI ("…/address/v2"): register it, point the
-- capabilities at it with update_agent, then delete_schema the old one.

CREATE FUNCTION orchestration.json_schema_documents_used(schema jsonb, documents jsonb, base_uri text, what text)
RETURNS jsonb
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'orch_json_schema_documents_used';
COMMENT ON FUNCTION orchestration.json_schema_documents_used(jsonb, jsonb, text, text) IS
  'Internal: compiles a JSON Schema, whose base URI is base_uri (empty for none) and whose references may name these documents ({uri: schema}), and returns the URIs of those it uses, as a JSON array; an invalid schema or a reference that resolves nowhere is an error starting with what';

CREATE FUNCTION orchestration.schema_refs(schema jsonb, documents jsonb, base_uri text, what text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT ARRAY(SELECT jsonb_array_elements_text(orchestration.json_schema_documents_used(schema, documents, base_uri, what)))
$$;
COMMENT ON FUNCTION orchestration.schema_refs(jsonb, jsonb, text, text) IS
  'Internal: json_schema_documents_used as a sorted text[]';

CREATE FUNCTION orchestration.project_schemas(project_id integer, uris text[] DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_object_agg(s.uri, s.schema), '{}')
  FROM orchestration.registered_schemas s
  WHERE s.project_id = project_schemas.project_id AND (uris IS NULL OR s.uri = ANY (uris))
$$;
COMMENT ON FUNCTION orchestration.project_schemas(integer, text[]) IS
  'Internal: a project''s registered schemas (all, or those of these URIs) as one JSON object {uri: schema}, the documents its schemas may refer to';

-- Taken before a project's registered schemas are read to store something that refers to
-- them, in the same order (by id) everywhere: FOR SHARE by store_agent, FOR UPDATE by
-- register_schema and delete_schema, so that no schema changes between the check that it
-- is unused and the commit of a capability that uses it.
CREATE FUNCTION orchestration.lock_project_schemas(project_id integer, for_update boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF for_update THEN
    PERFORM 1 FROM orchestration.registered_schemas s
    WHERE s.project_id = lock_project_schemas.project_id ORDER BY s.id FOR UPDATE;
  ELSE
    PERFORM 1 FROM orchestration.registered_schemas s
    WHERE s.project_id = lock_project_schemas.project_id ORDER BY s.id FOR SHARE;
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.lock_project_schemas(integer, boolean) IS
  'Internal: locks a project''s registered schemas (FOR SHARE to read them for a capability, FOR UPDATE to change one), by id';

-- Who uses a registered schema: capabilities ("agent.capability") and other registered schemas.
CREATE FUNCTION orchestration.schema_users(project_id integer, uri text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT string_agg(u, ', ' ORDER BY u) FROM (
    SELECT format('capability "%s.%s"', a.name, c.name) AS u
    FROM orchestration.agent_capabilities c JOIN orchestration.agents a ON a.id = c.agent_id
    WHERE c.project_id = schema_users.project_id AND schema_users.uri = ANY (c.schema_refs)
    UNION ALL
    SELECT format('schema "%s"', s.uri)
    FROM orchestration.registered_schemas s
    WHERE s.project_id = schema_users.project_id AND schema_users.uri = ANY (s.uses)) users
$$;
COMMENT ON FUNCTION orchestration.schema_users(integer, text) IS
  'Internal: the capabilities and registered schemas of the project that use the registered schema with this URI, as a list for messages; NULL when none';

CREATE FUNCTION orchestration.register_schema(project_id integer, uri text, schema jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := orchestration.authorize(project_id, 'orchestration_admin');
  existing orchestration.registered_schemas;
  used text[];
  users text;
  stored_id bigint;
BEGIN
  IF uri IS NULL OR schema IS NULL THEN
    RAISE EXCEPTION 'register_schema: uri and schema must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  -- The form the validator resolves references to: absolute, without a fragment.
  IF uri !~ '^[A-Za-z][-A-Za-z0-9+.]*:[^#[:space:]]+$' OR octet_length(uri) > 2048 THEN
    RAISE EXCEPTION 'invalid schema URI "%": it must be an absolute URI without a fragment, of at most 2048 bytes', uri
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example https://example.com/schemas/address/v1 or urn:example:address:v1.';
  END IF;
  IF uri LIKE 'https://json-schema.org/%' THEN
    RAISE EXCEPTION 'invalid schema URI "%": https://json-schema.org/ is where the built-in metaschemas live', uri
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Register the schema under a URI of your own.';
  END IF;
  PERFORM orchestration.lock_project_schemas(project_id, true);
  SELECT * INTO existing FROM orchestration.registered_schemas s
  WHERE s.project_id = register_schema.project_id AND s.uri = register_schema.uri;
  IF FOUND AND existing.schema = schema THEN
    RETURN existing.id;  -- the same again changes nothing
  END IF;
  -- Validated as a capability's schema is, with the project's other registered schemas,
  -- and with its URI as its base: "$ref": "address/v1" in https://example.com/customer/v1
  -- names https://example.com/address/v1.
  used := orchestration.schema_refs(schema, orchestration.project_schemas(project_id) - uri, uri,
                                    format('schema "%s"', uri));
  IF existing.id IS NULL THEN
    INSERT INTO orchestration.registered_schemas AS s (project_id, uri, schema, uses, registered_by)
    VALUES (register_schema.project_id, register_schema.uri, register_schema.schema, used, caller)
    RETURNING s.id INTO stored_id;
    RETURN stored_id;
  END IF;
  users := orchestration.schema_users(project_id, uri);
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'schema "%" cannot be changed: it is used by %', uri, users
      USING ERRCODE = 'dependent_objects_still_exist',
            DETAIL = 'A registered schema in use is fixed: the contracts that refer to it were checked against it.',
            HINT = 'Register the new version under a new URI (such as .../v2), point the capabilities at it with orchestration.update_agent(), then delete the old one with orchestration.delete_schema().';
  END IF;
  UPDATE orchestration.registered_schemas s
  SET schema = register_schema.schema, uses = used, registered_by = caller, updated_at = now()
  WHERE s.id = existing.id;
  RETURN existing.id;
END
$$;
COMMENT ON FUNCTION orchestration.register_schema(integer, text, jsonb) IS
  'Registers a JSON Schema in a project under an absolute URI (no fragment), for the project''s capability schemas to $ref ("$ref": "https://example.com/address#/$defs/zip"); returns its id. Validated as it is stored (its own references may name the project''s other registered schemas). The same schema again changes nothing; a different one replaces it only while no capability or registered schema uses it. Requires orchestration_admin and the project';

CREATE FUNCTION orchestration.delete_schema(project_id integer, uri text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  users text;
BEGIN
  PERFORM orchestration.authorize(project_id, 'orchestration_admin');
  PERFORM orchestration.lock_project_schemas(project_id, true);
  users := orchestration.schema_users(project_id, uri);
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'schema "%" cannot be deleted: it is used by %', uri, users
      USING ERRCODE = 'dependent_objects_still_exist',
            HINT = 'Point them at another schema first (orchestration.update_agent(), orchestration.register_schema()).';
  END IF;
  DELETE FROM orchestration.registered_schemas s
  WHERE s.project_id = delete_schema.project_id AND s.uri = delete_schema.uri;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'schema "%" is not registered in project %', uri, project_id USING ERRCODE = 'undefined_object';
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.delete_schema(integer, text) IS
  'Deletes a registered schema; refused while a capability or another registered schema uses it. Requires orchestration_admin and the project';

-- A capability's schemas for the scheduler's contract cache, with the registered schemas
-- they use.
CREATE FUNCTION orchestration.capability_contract(capability_id bigint)
RETURNS TABLE (input_schema jsonb, output_schema jsonb, documents jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.input_schema, c.output_schema, orchestration.project_schemas(c.project_id, c.schema_refs)
  FROM orchestration.agent_capabilities c WHERE c.id = capability_id
$$;
COMMENT ON FUNCTION orchestration.capability_contract(bigint) IS
  'Internal (scheduler): a capability''s input and output JSON Schemas, and the registered schemas of its project they use ({uri: schema})';

REVOKE ALL ON FUNCTION
  orchestration.json_schema_documents_used(jsonb, jsonb, text, text),
  orchestration.schema_refs(jsonb, jsonb, text, text),
  orchestration.project_schemas(integer, text[]),
  orchestration.lock_project_schemas(integer, boolean),
  orchestration.schema_users(integer, text),
  orchestration.register_schema(integer, text, jsonb),
  orchestration.delete_schema(integer, text),
  orchestration.capability_contract(bigint)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  orchestration.register_schema(integer, text, jsonb),
  orchestration.delete_schema(integer, text)
TO orchestration_admin;
-- ==== End of: contracts: registered schemas (issue 17) ========================================

-- ==== Performance: a chain's next step without the queue; fewer checks per node (issue 16) ====

-- In C, without settings (they ran once per attempt in the scheduler's hot path).
CREATE OR REPLACE FUNCTION orchestration.child_traceparent(parent text) RETURNS text
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_child_traceparent';
COMMENT ON FUNCTION orchestration.child_traceparent(text) IS
  'A W3C traceparent for a new span in the same trace as parent (a new trace when parent is not a valid traceparent): a run''s span in its caller''s trace, a node attempt''s in its run''s';

CREATE OR REPLACE FUNCTION orchestration.tracing_enabled() RETURNS boolean
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'orch_tracing_enabled';
COMMENT ON FUNCTION orchestration.tracing_enabled() IS
  'Internal: whether orchestration.otlp_endpoint is set, so that spans are kept for the relay to send';

-- Not foreign keys any more (10_tables.sql says why); triggers do what their actions did.
ALTER TABLE orchestration.workflow_run_nodes
  DROP CONSTRAINT workflow_run_nodes_run_id_fkey,
  DROP CONSTRAINT workflow_run_nodes_agent_id_fkey;
ALTER TABLE orchestration.agent_runs DROP CONSTRAINT agent_runs_agent_id_fkey;
-- run_id and agent_id are not foreign keys: PostgreSQL checks a row's keys again at every
-- update of a row the same transaction wrote before, a statement per key, and the nodes a
-- worker updates most are such rows (a chain's next step, a wide run's last node, updated
-- once per finished dependency). Triggers do what the keys' actions did: a deleted run's
-- nodes are deleted with it (runs_deleted), a deleted agent's id becomes NULL
-- (agents_deleted). Nothing keeps a concurrent writer from leaving an id whose row is gone
-- (a foreign key would lock it), so every reader joins agents with LEFT JOIN and reads
-- such an id as NULL: the agent deleted.
COMMENT ON COLUMN orchestration.workflow_run_nodes.run_id IS
  'The node''s run; deleted with it (the runs_deleted trigger)';
COMMENT ON COLUMN orchestration.workflow_run_nodes.agent_id IS
  'The agent the node calls; set to NULL when the agent is deleted (the agents_deleted trigger). An agent that is gone, either way, fails the node, if it has yet to run, saying so';
COMMENT ON COLUMN orchestration.agent_runs.agent_id IS
  'The agent of the attempt; set to NULL when the agent is deleted (the agents_deleted trigger; not a foreign key, for the reason workflow_run_nodes.agent_id is not one). agent_name keeps its name';

-- What ON DELETE SET NULL did for the agent ids of run nodes and attempts (10_tables.sql
-- says why they are not foreign keys). Nodes first: a worker recording attempts of a node
-- holds its row, so this waits for that worker to commit, and the next statement, with a
-- snapshot of its own, then sees the attempts it wrote.
CREATE FUNCTION orchestration.forget_deleted_agents() RETURNS trigger
LANGUAGE plpgsql
-- As a foreign key's action ran: as the owner, so a role that may delete agents need not
-- be able to write the nodes and attempts (nor pass their row security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE orchestration.workflow_run_nodes n SET agent_id = NULL
  WHERE n.agent_id IN (SELECT d.id FROM deleted_agents d);
  UPDATE orchestration.agent_runs a SET agent_id = NULL
  WHERE a.agent_id IN (SELECT d.id FROM deleted_agents d);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.forget_deleted_agents() IS
  'Internal (trigger on agents): sets the agent id of the deleted agents'' run nodes and attempts to NULL';

CREATE TRIGGER agents_deleted AFTER DELETE ON orchestration.agents
  REFERENCING OLD TABLE AS deleted_agents FOR EACH STATEMENT
  EXECUTE FUNCTION orchestration.forget_deleted_agents();

-- What ON DELETE CASCADE did for a run's nodes (10_tables.sql says why run_id is not a
-- foreign key); their attempts and approvals go with them by their own keys.
CREATE FUNCTION orchestration.delete_nodes_of_deleted_runs() RETURNS trigger
LANGUAGE plpgsql
-- As a foreign key's action ran: as the owner (forget_deleted_agents says why).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Their attempts by the run too: one recorded for a node deleted while its result was
  -- written (no key waits for that) names the run as well.
  DELETE FROM orchestration.agent_runs a WHERE a.run_id = ANY (ARRAY(SELECT d.id FROM deleted_runs d));
  DELETE FROM orchestration.workflow_run_nodes n WHERE n.run_id IN (SELECT d.id FROM deleted_runs d);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.delete_nodes_of_deleted_runs() IS
  'Internal (trigger on workflow_runs): deletes the nodes of deleted runs (and, through their foreign keys, their attempts and approvals)';

CREATE TRIGGER runs_deleted AFTER DELETE ON orchestration.workflow_runs
  REFERENCING OLD TABLE AS deleted_runs FOR EACH STATEMENT
  EXECUTE FUNCTION orchestration.delete_nodes_of_deleted_runs();

-- What TRUNCATE ... CASCADE did through the key: truncating the runs removes their nodes
-- (and, through their keys, the attempts). A DELETE, not a TRUNCATE: the approvals, which
-- reference both, are being truncated by the statement that fired this.
CREATE FUNCTION orchestration.truncate_nodes_of_truncated_runs() RETURNS trigger
LANGUAGE plpgsql
-- As the owner, as forget_deleted_agents (30_registry.sql) says.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- The attempts first, as the key's cascade did (nothing references them): the nodes'
  -- trigger then finds none left to delete.
  TRUNCATE orchestration.agent_runs;
  DELETE FROM orchestration.workflow_run_nodes;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.truncate_nodes_of_truncated_runs() IS
  'Internal (trigger on workflow_runs): deletes every run node (and, through their foreign keys, the attempts) when the runs are truncated';
CREATE TRIGGER runs_truncated AFTER TRUNCATE ON orchestration.workflow_runs
  FOR EACH STATEMENT EXECUTE FUNCTION orchestration.truncate_nodes_of_truncated_runs();

-- What claimed_node_details computes only for the nodes that need it, as calls, not
-- subqueries: a subquery's plan is set up at every execution of the statement it is in,
-- whether any row needs it or not (about an eighth of a one-node claim); a call costs
-- nothing where it is not made. PL/pgSQL, so that a call is not inlined back into a
-- subquery and its plan is kept for the session.

-- The scope a node's templates read: the run's context, the run, the workflow and the
-- outputs of the upstream nodes its templates name (refs), each looked up by
-- (run_id, node_key).
CREATE FUNCTION orchestration.template_scope(run orchestration.workflow_runs, workflow_name text, refs text[])
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN jsonb_build_object(
    'context', run.context,
    'run', jsonb_build_object('id', run.id, 'project_id', run.project_id, 'trigger', run.trigger,
                              'started_by', run.started_by, 'traceparent', run.traceparent),
    'workflow', jsonb_build_object('id', run.workflow_id, 'name', workflow_name, 'version', run.workflow_version),
    'nodes', coalesce((SELECT jsonb_object_agg(ref, upstream) FILTER (WHERE upstream IS NOT NULL)
                       FROM (SELECT ref, (SELECT jsonb_build_object('output', u.output)
                                          FROM orchestration.workflow_run_nodes u
                                          WHERE u.run_id = run.id AND u.node_key = ref
                                            AND u.status = 'SUCCESS') AS upstream
                             FROM unnest(refs) AS ref) r), '{}'));
END
$$;
COMMENT ON FUNCTION orchestration.template_scope(orchestration.workflow_runs, text, text[]) IS
  'Internal (claimed_node_details): the scope a node''s templates read: context, run, workflow, and nodes (the outputs of the SUCCESS upstream nodes of refs, by key)';

-- Whether a node has an approval that counts: one given for the agent and function as
-- they are now (update_agent or CREATE OR REPLACE FUNCTION since asks again).
CREATE FUNCTION orchestration.approval_given(run_id bigint, node_id bigint, agent_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- A lookup per node by its run (indexed), never a hash of every approval.
  RETURN EXISTS (SELECT 1 FROM orchestration.workflow_approvals ap
                 WHERE ap.run_id = approval_given.run_id AND ap.run_node_id = approval_given.node_id
                   AND ap.status = 'APPROVED' AND ap.agent_pin = orchestration.agent_pin(approval_given.agent_id));
END
$$;
COMMENT ON FUNCTION orchestration.approval_given(bigint, bigint, bigint) IS
  'Internal (claimed_node_details): whether a node has an APPROVED approval given for its agent and function as they are now (agent_pin)';

-- It hands off the RULE nodes its successes made runnable: a new argument and result type.
DROP FUNCTION orchestration.record_attempts(bigint[], boolean[], jsonb[], jsonb[], text[], timestamptz[], timestamptz[], bigint, integer[], text[], text[]);
-- What the scheduler needs to move claimed nodes on (claim_nodes, record_attempts): each
-- node with its agent, its template scope, whether it still needs an approval, and its
-- capability's id and row version, in dispatch order.
CREATE FUNCTION orchestration.claimed_node_details(node_ids bigint[])
RETURNS TABLE (node_id bigint, run_id bigint, project_id integer, node_key text,
               attempt integer, inputs jsonb, condition jsonb, agent_name text, action text,
               agent_type orchestration.agent_type, rule_function text, runs_as name,
               timeout_seconds integer, scope jsonb, needs_approval boolean,
               capability_id bigint, contract_version text, agent jsonb)
-- SQL with no settings of its own, so that the planner inlines it into its callers'
-- statements (a chain step saves a function call and a copy of its rows): it is planned
-- with their settings, and its names, all qualified or built in, are resolved with their
-- search_path (pg_catalog, pg_temp). Nobody else may call it.
LANGUAGE sql STABLE
AS $$
    SELECT claimed.id, claimed.run_id, claimed.project_id, claimed.node_key, claimed.attempt,
           claimed.inputs, claimed.condition, a.name, claimed.action, a.type, a.rule_function,
           a.runs_as,
           coalesce(claimed.timeout_seconds, a.timeout_seconds),
           -- The scope its templates read; none for a node whose inputs and condition use
           -- none (placeholders are "{{ ... }}"; this text search may see one that is not).
           CASE WHEN claimed.condition IS NOT NULL OR strpos(claimed.inputs::text, '{{') > 0
                THEN orchestration.template_scope(r, w.name, claimed.refs) END,
           -- An approval counts only for the agent and function it was given for: one
           -- changed since (update_agent, CREATE OR REPLACE FUNCTION) is asked about again.
           CASE WHEN claimed.approval_required OR a.risk_level = 'APPROVAL_REQUIRED'
                THEN NOT orchestration.approval_given(claimed.run_id, claimed.id, a.id)
                ELSE false END,
           -- The row version identifies the schemas, so the scheduler compiles them
           -- once and again only after update_agent changes them.
           c.id, c.xmin::text,
           -- What a container needs (image, command, limits, secrets); a RULE node needs none.
           CASE WHEN a.type <> 'RULE' THEN orchestration.agent_json(a) END
    FROM orchestration.workflow_run_nodes claimed
    -- A node whose agent was deleted, or lost the capability, since its run started is
    -- returned all the same (agent_name or capability_id NULL), to be failed saying so.
    LEFT JOIN orchestration.agents a ON a.id = claimed.agent_id
    JOIN orchestration.workflow_runs r ON r.id = claimed.run_id
    JOIN orchestration.workflows w ON w.id = r.workflow_id
    LEFT JOIN orchestration.agent_capabilities c ON c.agent_id = a.id AND c.name = claimed.action
    WHERE claimed.id = ANY (node_ids)
    ORDER BY claimed.priority DESC, claimed.level, claimed.id
$$;
COMMENT ON FUNCTION orchestration.claimed_node_details(bigint[]) IS
  'Internal (claim_nodes, record_attempts): each claimed node with its agent, its template scope (NULL for a node that uses no placeholders), whether it still needs an approval, and its capability''s id and row version (for the contract cache), in dispatch order. A node whose agent was deleted or lost the capability has agent_name or capability_id NULL';
-- The outcomes of attempts, in the order given. Each becomes an agent_runs row, and its
-- node moves on: SUCCESS releases its dependents; a failure is retried after exponential
-- backoff while retries remain, else it fails the node and the run. The scheduler records
-- a claim round of RULE nodes in one call (one statement per step, not per node) and a
-- finished container in a call of its own. Arrays left NULL (exit_codes, log_tails,
-- container_ids: RULE attempts have none) count as all NULL.
--
-- This is the scheduler's hot path: a chain of RULE nodes records one node per call, so
-- what a call costs is mostly how many statements it runs and how big their plans are,
-- not the rows. Two statements do the work: the first writes what concerns only the
-- nodes this worker holds (the attempts, their nodes' moves, the events); the second,
-- after the runs' rows are locked for writing, what other writers of the run also
-- change (the dependents' counters). Several workers record nodes of one run at once,
-- taking turns only for the second part and their commits. (One success in a RUNNING
-- run, a chain's step, is written by plain statements under the run's lock from the
-- start: see the first branch below.) A run's status is derived
-- again (refresh_run) only when it may have changed; and the span trigger on agent_runs
-- fires only while tracing is on.
CREATE FUNCTION orchestration.record_attempts(node_ids bigint[], succeeded boolean[], attempt_inputs jsonb[],
                                              outputs jsonb[], errors text[],
                                              started_at timestamptz[], finished_at timestamptz[],
                                              scheduler_round bigint,
                                              exit_codes integer[] DEFAULT NULL,
                                              log_tails text[] DEFAULT NULL,
                                              container_ids text[] DEFAULT NULL,
                                              hand_off boolean DEFAULT false)
RETURNS TABLE (node_id bigint, run_id bigint, project_id integer, node_key text,
               attempt integer, inputs jsonb, condition jsonb, agent_name text, action text,
               agent_type orchestration.agent_type, rule_function text, runs_as name,
               timeout_seconds integer, scope jsonb, needs_approval boolean,
               capability_id bigint, contract_version text, agent jsonb)
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
#variable_conflict use_column
DECLARE
  emitted bigint;
  refreshed bigint[];
  failed_ids bigint[];
  failed_errors text[];
  failed_runs bigint[];
  dependent_ids bigint[];   -- the dependents of the nodes that succeeded here, each once,
  dependent_counts bigint[];  -- and how many of its dependencies did
  live_runs bigint[];       -- runs of the succeeded nodes that were RUNNING
  wake_rule boolean;
  wake_containers boolean;
  released_rule bigint[];   -- the RULE nodes made runnable here, in dispatch order
  one record;               -- the one successful attempt recorded the plain way
  one_attempt integer;
  one_released boolean;
  starting_runs bigint[];   -- PENDING runs this call starts (start_runs says why here)
BEGIN
  IF cardinality(node_ids) IS DISTINCT FROM cardinality(succeeded)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(attempt_inputs)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(started_at)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(finished_at) THEN
    RAISE EXCEPTION 'record_attempts: the arrays must have one element per node'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- 1. The attempts and their nodes, which this transaction holds (a claim locked them, or
  -- a container's node is RUNNING: nobody claims it): no other writer touches these rows.
  -- One attempt that succeeded, of a node still waiting for it in a live run that is not
  -- waiting for an approval (every step of a chain, most container completions, a
  -- one-node run), is recorded by plain statements: the set-based ones below, made for
  -- claim rounds of many nodes, cost one node about twice as much, most of it the
  -- executor's start-up of their plans. It takes the run's lock first (statement 2 takes
  -- it after statement 1; this transaction keeps it to its end either way). A PENDING run
  -- starts here (start_run_of): its run.started event goes before the node's, and its row
  -- is written once, by refresh_run. A node or run found otherwise goes the general way.
  IF cardinality(node_ids) = 1 AND succeeded[1] THEN
    SELECT n.run_id, n.project_id, n.node_key, n.agent_id, n.dependents, n.status, n.attempt_traceparent,
           r.status AS run_status, r.traceparent AS run_traceparent
      INTO one
    FROM orchestration.workflow_run_nodes n JOIN orchestration.workflow_runs r ON r.id = n.run_id
    WHERE n.id = node_ids[1]
    FOR NO KEY UPDATE OF r;
    IF one.run_status IN ('PENDING', 'RUNNING') AND one.status IN ('PENDING', 'RUNNING') THEN
      UPDATE orchestration.workflow_run_nodes n SET
        attempt = n.attempt + 1, status = 'SUCCESS', output = outputs[1], error = NULL,
        resolved_input = attempt_inputs[1],
        started_at = coalesce(n.started_at, record_attempts.started_at[1]),
        finished_at = record_attempts.finished_at[1], next_attempt_at = NULL
      WHERE n.id = node_ids[1]
      RETURNING n.attempt INTO one_attempt;
      INSERT INTO orchestration.agent_runs
        (project_id, agent_id, agent_name, run_id, run_node_id, node_key, attempt, input_json,
         output_json, status, error, exit_code, log_tail, container_id, scheduler_round,
         started_at, finished_at, duration_ms, traceparent)
      VALUES (one.project_id, one.agent_id,
              coalesce((SELECT ag.name FROM orchestration.agents ag WHERE ag.id = one.agent_id), '(deleted)'),
              one.run_id, node_ids[1], one.node_key, one_attempt, attempt_inputs[1], outputs[1], 'SUCCESS',
              errors[1], exit_codes[1], log_tails[1], container_ids[1], scheduler_round,
              record_attempts.started_at[1], record_attempts.finished_at[1],
              (extract(epoch FROM record_attempts.finished_at[1] - record_attempts.started_at[1]) * 1000)::integer,
              -- As below: the span its container got, or a new one in the run's trace.
              coalesce(CASE WHEN one.status = 'RUNNING' THEN one.attempt_traceparent END,
                       orchestration.child_traceparent(one.run_traceparent)));
      -- A run its claim did not start (one node, or claimed with another run's nodes)
      -- starts here: its run.started first.
      IF one.run_status = 'PENDING' THEN
        PERFORM orchestration.emit_events(ARRAY[one.project_id], ARRAY['orchestration.run.started'], ARRAY[one.run_id],
                                          ARRAY[NULL], ARRAY['{"status": "RUNNING"}'::jsonb],
                                          ARRAY[record_attempts.started_at[1]]);
      END IF;
      WITH inserted AS (
        INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
        VALUES (one.project_id, 'orchestration.node.succeeded', orchestration.event_subject(one.run_id, one.node_key),
                one.run_id,
                orchestration.event_document(one.project_id, 'orchestration.node.succeeded',
                  orchestration.event_subject(one.run_id, one.node_key), one.run_id, one.node_key, one.run_traceparent,
                  jsonb_build_object('status', 'SUCCESS', 'attempt', one_attempt, 'output', outputs[1])))
        RETURNING e.id, e.type, e.run_id
      )
      SELECT count(pg_notify('orchestration_events', orchestration.event_notification(i.id, i.type, i.run_id)))
        INTO emitted
      FROM inserted i;
      PERFORM orchestration.wake_relay();
      -- Its dependents, each looked up by (run_id, node_key) in a subquery of its own, as
      -- statement 1 does below: an index probe each whatever the statistics say (a plan
      -- made on empty tables could otherwise walk every live node of the run). From here
      -- on this is statement 3 and the end below for one node, written out because they
      -- cost a chain step 7% more CPU (their GROUP BY and EXCEPT): a change to what
      -- releasing a node means is a change to both.
      WITH released AS (
        UPDATE orchestration.workflow_run_nodes d SET pending_deps = d.pending_deps - 1
        WHERE d.id = ANY (ARRAY(SELECT (SELECT x.id FROM orchestration.workflow_run_nodes x
                                        WHERE x.run_id = one.run_id AND x.node_key = k)
                                FROM unnest(one.dependents) AS k))
        RETURNING d.id, d.priority, d.level, d.status = 'PENDING' AND d.pending_deps <= 0 AS runnable,
                  (SELECT a.type FROM orchestration.agents a WHERE a.id = d.agent_id) IS NOT DISTINCT FROM 'RULE' AS rule,
                  d.next_attempt_at IS NULL OR d.next_attempt_at <= clock_timestamp() AS due
      )
      SELECT bool_or(l.rule) FILTER (WHERE l.runnable), bool_or(NOT l.rule) FILTER (WHERE l.runnable),
             array_agg(l.id ORDER BY l.priority DESC, l.level, l.id) FILTER (WHERE l.runnable AND l.rule AND l.due),
             coalesce(bool_or(l.runnable), false)
        INTO wake_rule, wake_containers, released_rule, one_released
      FROM released l;
      IF wake_rule OR wake_containers THEN
        PERFORM orchestration.wake_workers(wake_rule, wake_containers);
      END IF;
      -- A run with a node runnable is RUNNING: nothing to derive (a chain's first step
      -- starts it).
      IF NOT one_released THEN
        PERFORM orchestration.refresh_run(one.run_id,
                                          CASE WHEN one.run_status = 'PENDING' THEN record_attempts.started_at[1] END);
      ELSIF one.run_status = 'PENDING' THEN
        UPDATE orchestration.workflow_runs r SET status = 'RUNNING', started_at = record_attempts.started_at[1]
        WHERE r.id = one.run_id;
      END IF;
      -- The hand-off, as at the end below (nothing here can have ended the run).
      IF hand_off AND released_rule IS NOT NULL THEN
        RETURN QUERY SELECT * FROM orchestration.claimed_node_details(released_rule);
      END IF;
      RETURN;
    END IF;
  END IF;

  -- The PENDING runs among these start first (start_runs), when their first attempt began,
  -- their run.started events before their nodes': their rows locked for writing
  -- (statement 2 below takes the others' locks), in id order.
  SELECT array_agg(l.id ORDER BY l.id) INTO starting_runs
  FROM (SELECT r.id FROM orchestration.workflow_runs r
        WHERE r.id IN (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (node_ids))
          AND r.status = 'PENDING'
        ORDER BY r.id FOR NO KEY UPDATE OF r) l;
  IF starting_runs IS NOT NULL THEN
    PERFORM orchestration.start_runs(starting_runs,
              ARRAY(SELECT min(u.started_at)
                    FROM unnest(node_ids, record_attempts.started_at) AS u(id, started_at)
                    JOIN orchestration.workflow_run_nodes n ON n.id = u.id
                    WHERE n.run_id = ANY (starting_runs)
                    GROUP BY n.run_id ORDER BY n.run_id));
  END IF;

  WITH attempt AS (
    SELECT u.*, n.project_id, n.run_id, n.node_key, n.agent_id, n.retries, n.dependents, n.attempt + 1 AS number,
           r.status AS run_status, r.traceparent AS run_traceparent,
           CASE WHEN n.status NOT IN ('PENDING', 'RUNNING') THEN NULL  -- cancelled or skipped meanwhile: only the attempt is kept
                WHEN r.status = 'CANCELLED' THEN 'cancelled'            -- a container stopped by cancel_run
                WHEN u.succeeded THEN 'succeeded'
                -- No retry in a run that another node failed meanwhile (while another
                -- worker held this one): the attempt's failure is final.
                WHEN n.attempt + 1 <= n.retries AND r.status <> 'FAILED' THEN 'retrying'
                ELSE 'failed' END AS outcome,
           -- Exponential backoff: retry_backoff_seconds, then twice that, then four times, ...
           u.finished_at + make_interval(secs => n.retry_backoff_seconds * 2 ^ n.attempt) AS retry_at,
           -- The attempt's span: the one its container got, or a new one in the run's trace.
           coalesce(CASE WHEN n.status = 'RUNNING' THEN n.attempt_traceparent END,
                    orchestration.child_traceparent(r.traceparent)) AS traceparent
    FROM unnest(node_ids, succeeded, attempt_inputs, outputs, errors, started_at, finished_at,
                exit_codes, log_tails, container_ids) WITH ORDINALITY
         AS u(node_id, succeeded, input, output, error, started_at, finished_at, exit_code,
              log_tail, container_id, position)
    JOIN orchestration.workflow_run_nodes n ON n.id = u.node_id
    JOIN orchestration.workflow_runs r ON r.id = n.run_id
  ), kept AS (
    INSERT INTO orchestration.agent_runs
      (project_id, agent_id, agent_name, run_id, run_node_id, node_key, attempt, input_json,
       output_json, status, error, exit_code, log_tail, container_id, scheduler_round,
       started_at, finished_at, duration_ms, traceparent)
    SELECT t.project_id, t.agent_id, coalesce(ag.name, '(deleted)'), t.run_id, t.node_id, t.node_key, t.number, t.input, t.output,
           CASE WHEN t.succeeded THEN 'SUCCESS' ELSE 'FAILED' END::orchestration.run_status,
           t.error, t.exit_code, t.log_tail, t.container_id, scheduler_round, t.started_at,
           t.finished_at, (extract(epoch FROM t.finished_at - t.started_at) * 1000)::integer,
           t.traceparent
    FROM attempt t LEFT JOIN orchestration.agents ag ON ag.id = t.agent_id
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
  ), inserted AS (
    -- The node events, as emit_events writes them (a failure for good gets its event
    -- from fail_node).
    INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
    SELECT t.project_id, v.type, v.subject, t.run_id,
           orchestration.event_document(t.project_id, v.type, v.subject, t.run_id, t.node_key, t.run_traceparent,
             CASE t.outcome
               WHEN 'cancelled' THEN jsonb_build_object('status', 'CANCELLED')
               WHEN 'succeeded' THEN jsonb_build_object('status', 'SUCCESS', 'attempt', t.number, 'output', t.output)
               ELSE jsonb_build_object('status', 'PENDING', 'attempt', t.number, 'error', t.error,
                                       'next_attempt_at', t.retry_at) END)
    FROM attempt t,
         LATERAL (SELECT 'orchestration.node.' || t.outcome AS type,
                         orchestration.event_subject(t.run_id, t.node_key) AS subject) v
    WHERE t.outcome <> 'failed'
    ORDER BY t.position
    RETURNING e.id, e.type, e.run_id
  ), notified AS (
    SELECT count(*) AS events
    FROM (SELECT * FROM inserted ORDER BY id) i,
         LATERAL pg_notify('orchestration_events', orchestration.event_notification(i.id, i.type, i.run_id))
  ), dependent AS (
    -- The dependents of the nodes that succeeded, each once with the number of its
    -- dependencies that did (a wide round's join node is looked up once, not once per
    -- node), each looked up by (run_id, node_key) in a subquery of its own, so the plan is
    -- an index probe per dependent whatever the statistics say about the table.
    SELECT (SELECT d.id FROM orchestration.workflow_run_nodes d
            WHERE d.run_id = f.run_id AND d.node_key = f.node_key) AS id, f.finished
    FROM (SELECT t.run_id, k AS node_key, count(*) AS finished
          FROM attempt t, unnest(t.dependents) AS k
          WHERE t.outcome = 'succeeded'
          GROUP BY t.run_id, k) f
  )
  SELECT (SELECT n.events FROM notified n),
         (SELECT array_agg(d.id ORDER BY d.id) FILTER (WHERE d.id IS NOT NULL) FROM dependent d),
         (SELECT array_agg(d.finished ORDER BY d.id) FILTER (WHERE d.id IS NOT NULL) FROM dependent d),
         array_agg(DISTINCT t.run_id) FILTER (WHERE t.outcome = 'succeeded' AND t.run_status = 'RUNNING'),
         array_agg(DISTINCT t.run_id) FILTER (WHERE t.outcome = 'succeeded' AND t.run_status <> 'RUNNING'),
         array_agg(t.node_id ORDER BY t.position) FILTER (WHERE t.outcome = 'failed'),
         array_agg(CASE WHEN t.retries > 0 THEN format('%s (after %s attempts)', t.error, t.number)
                        ELSE t.error END ORDER BY t.position) FILTER (WHERE t.outcome = 'failed')
    INTO emitted, dependent_ids, dependent_counts, live_runs, refreshed, failed_ids, failed_errors
  FROM attempt t;

  -- 2. The lock order (70_runs.sql): the runs' rows, for writing (FOR NO KEY UPDATE), in id
  -- order. Writers of a run take turns from here to their commit, so what follows sees
  -- what the previous writer committed; claims of other workers go on.
  -- A locked row is read as it is now: the runs another worker failed meanwhile.
  SELECT array_agg(l.id) FILTER (WHERE l.status = 'FAILED') INTO failed_runs
  FROM (SELECT r.id, r.status FROM orchestration.workflow_runs r
        WHERE r.id IN (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (node_ids))
        ORDER BY r.id FOR NO KEY UPDATE OF r) l;

  IF dependent_ids IS NOT NULL THEN
    -- Each finished dependency takes one off its dependents' counters (a node succeeding
    -- here is never a dependent of another one recorded here: it ran, so they had ended).
    -- A dependent that is no longer PENDING (skipped when its run failed while this
    -- node ran) has a counter nobody reads (retry_run recounts).
    WITH released AS (
      UPDATE orchestration.workflow_run_nodes d SET pending_deps = d.pending_deps - f.finished
      FROM unnest(dependent_ids, dependent_counts) AS f(id, finished)
      WHERE d.id = f.id
      RETURNING d.id, d.run_id, d.priority, d.level, d.status = 'PENDING' AND d.pending_deps <= 0 AS runnable,
                (SELECT a.type FROM orchestration.agents a WHERE a.id = d.agent_id) IS NOT DISTINCT FROM 'RULE' AS rule,
                d.next_attempt_at IS NULL OR d.next_attempt_at <= clock_timestamp() AS due
    )
    SELECT bool_or(l.rule) FILTER (WHERE l.runnable), bool_or(NOT l.rule) FILTER (WHERE l.runnable),
           array_agg(l.id ORDER BY l.priority DESC, l.level, l.id) FILTER (WHERE l.runnable AND l.rule AND l.due),
           -- A run that was RUNNING and now has a runnable node stays RUNNING: nothing to derive.
           refreshed || ARRAY(SELECT unnest(live_runs) EXCEPT SELECT l.run_id FROM released l WHERE l.runnable)
      INTO wake_rule, wake_containers, released_rule, refreshed
    FROM released l;
  ELSE
    refreshed := refreshed || live_runs;
  END IF;

  IF emitted > 0 THEN
    PERFORM orchestration.wake_relay();
  END IF;
  -- Released nodes wake the worker that runs them (a RULE worker recording its own
  -- results wakes no other: it looks again itself).
  IF wake_rule OR wake_containers THEN
    PERFORM orchestration.wake_workers(wake_rule, wake_containers);
  END IF;
  FOR i IN 1 .. coalesce(cardinality(refreshed), 0) LOOP
    PERFORM orchestration.refresh_run(refreshed[i]);
  END LOOP;
  FOR i IN 1 .. coalesce(cardinality(failed_ids), 0) LOOP
    PERFORM orchestration.fail_node(failed_ids[i], failed_errors[i]);
  END LOOP;
  -- A run another worker failed while these nodes were held: what the failure passed over
  -- and nobody holds now is skipped, and so is a node of this call retried on the strength
  -- of the older look at the run in statement 1 (a worker that held nodes of it and died
  -- left them too).
  FOR i IN 1 .. coalesce(cardinality(failed_runs), 0) LOOP
    PERFORM orchestration.skip_unstarted_nodes(failed_runs[i]);
  END LOOP;
  -- A chain's next step without the queue (hand_off, a RULE worker's): its claim took
  -- every runnable RULE node of its project it could lock (a full claim ends its pass), so
  -- the RULE nodes released here, which nobody else sees before this transaction commits,
  -- are what it goes on with. It holds them already: it wrote their rows (the counters
  -- above, which read them as they are now) and holds their runs' rows (the lock above:
  -- a cancel waits for this transaction; a run found failed there is in failed_runs).
  IF hand_off AND released_rule IS NOT NULL THEN
    -- A node failed here, or another worker failed a run: the sweeps above may have
    -- skipped some of them. Only those still runnable go on, each node and its run looked
    -- up by key (subqueries of their own: a generic plan that joined them could scan every
    -- live run or every runnable node instead).
    IF failed_ids IS NOT NULL OR failed_runs IS NOT NULL THEN
      released_rule := ARRAY(
        SELECT u.id FROM unnest(released_rule) AS u(id)
        WHERE (SELECT n.status = 'PENDING'
                      AND (SELECT r.status FROM orchestration.workflow_runs r WHERE r.id = n.run_id)
                            IN ('RUNNING', 'WAITING_APPROVAL')
               FROM orchestration.workflow_run_nodes n WHERE n.id = u.id));
    END IF;
    RETURN QUERY SELECT * FROM orchestration.claimed_node_details(released_rule);
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.record_attempts(bigint[], boolean[], jsonb[], jsonb[], text[], timestamptz[], timestamptz[], bigint, integer[], text[], text[], boolean) IS
  'Internal (scheduler): records attempts of nodes (one agent_runs row each, in array order) and moves each node on: SUCCESS releases its dependents; a failure is retried after exponential backoff while retries remain, else fails the node and the run; a node cancelled or skipped meanwhile keeps only the attempt. With hand_off, returns the RULE nodes its successes made runnable (which this transaction holds), as claim_nodes returns the nodes it claims: a chain''s next step without a look at the queue';

COMMENT ON FUNCTION orchestration.claim_nodes(integer, integer, integer, bigint[], text, integer[], integer, bigint[]) IS
  'Internal (scheduler, RULE workers): locks runnable nodes of a kind (any, container, rule) in priority and level order, passing over rows others hold (SKIP LOCKED; the run FOR KEY SHARE, so several workers claim nodes of one run), runs that others are about to lock (reserve_run) or whose stopped attempt is not recorded yet, and the excluded projects; containers within the concurrency limits (finished_nodes: RUNNING containers that have finished, not counted); RULE nodes of one project at a time (only_project, or the first it can lock). Returns each node with its agent, its template scope, whether it still needs an approval, and its capability''s id and row version (for the contract cache)';

REVOKE ALL ON FUNCTION
  orchestration.record_attempts(bigint[], boolean[], jsonb[], jsonb[], text[], timestamptz[], timestamptz[], bigint, integer[], text[], text[], boolean),
  orchestration.claimed_node_details(bigint[]),
  orchestration.template_scope(orchestration.workflow_runs, text, text[]),
  orchestration.approval_given(bigint, bigint, bigint),
  orchestration.forget_deleted_agents(),
  orchestration.delete_nodes_of_deleted_runs(),
  orchestration.truncate_nodes_of_truncated_runs()
FROM PUBLIC;
-- ==== End of: a chain's next step without the queue (issue 16) ====================================

-- ==== Hot SQL functions keep their plans (issue 16) ================================================
-- An SQL function with a SET clause is never inlined and is planned again at every call.
-- Those on a caller's path (may_run_as and role_in_project, before a RULE attempt; run_json,
-- which wait_for_run reads: above, in their 0.2.0 form) or run for every relay batch are
-- PL/pgSQL now; nats_subject_of loses its SET clause and is inlined.
CREATE OR REPLACE FUNCTION orchestration.nats_subject_of(project_id integer, type text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT 'orchestration.' || project_id::text || '.' || substr(type, length('orchestration.') + 1) $$;
CREATE OR REPLACE FUNCTION orchestration.relay_next_events(batch_size integer)
RETURNS TABLE (id bigint, msg_id text, subject text, payload text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY
    SELECT e.id, e.payload->>'id', orchestration.nats_subject_of(e.project_id, e.type), e.payload::text
    FROM orchestration.events e
    WHERE e.published_at IS NULL
    ORDER BY e.id
    LIMIT batch_size;
END
$$;
CREATE OR REPLACE FUNCTION orchestration.relay_mark_published(event_ids bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE orchestration.events e SET published_at = clock_timestamp()
  WHERE e.id = ANY(event_ids) AND e.published_at IS NULL;
END
$$;
CREATE OR REPLACE FUNCTION orchestration.nats_trigger_subjects() RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY
    SELECT DISTINCT w.trigger->>'subject' FROM orchestration.workflows w
    WHERE w.status = 'ACTIVE' AND w.trigger->>'type' = 'nats'
    ORDER BY 1;
END
$$;
-- ==== End of: hot SQL functions keep their plans (issue 16) =========================================

-- ==== One event, plain statements (issue 16) =======================================================
-- emit_event writes its one row with a statement per row.
CREATE OR REPLACE FUNCTION orchestration.emit_event(project_id integer, entity text, event text,
                                         run_id bigint, node_key text, data jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  event_type text := 'orchestration.' || entity || '.' || event;
  event_subject text := orchestration.event_subject(run_id, node_key);
  event_id bigint;
BEGIN
  INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
  VALUES (emit_event.project_id, event_type, event_subject, emit_event.run_id,
          orchestration.event_document(emit_event.project_id, event_type, event_subject, emit_event.run_id,
                                       emit_event.node_key,
                                       (SELECT r.traceparent FROM orchestration.workflow_runs r WHERE r.id = emit_event.run_id),
                                       emit_event.data))
  RETURNING e.id INTO event_id;
  PERFORM pg_notify('orchestration_events', orchestration.event_notification(event_id, event_type, emit_event.run_id));
  PERFORM orchestration.wake_relay();
END
$$;
-- ==== End of: one event, plain statements (issue 16) ================================================

-- ==== The outbox's unused index (issue 16) ==========================================================
-- Nothing read events by created_at; every event written and marked published paid for it.
DROP INDEX orchestration.events_created_at_idx;
-- ==== End of: the outbox's unused index (issue 16) ==================================================

-- ==== The lock order across runs (issue 16) =========================================================
-- A RULE worker's claim round with nodes of several runs takes their rows in id order before
-- its first write (lock_runs), and its claim starts a PENDING run only when it holds no
-- other run's nodes: two workers can no longer each hold one run and wait for the other's.
-- The lock order across runs (70_runs.sql): a RULE worker's claim round that holds nodes of
-- several runs takes all their rows here, in id order, before its first write; its writes
-- then wait for no run. (Taken as its nodes came, a skip in run B before a result in run A
-- could wait for A while another worker, recording A and then B, waits for B.)
CREATE FUNCTION orchestration.lock_runs(run_ids bigint[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 1 FROM orchestration.workflow_runs r WHERE r.id = ANY (run_ids) ORDER BY r.id FOR NO KEY UPDATE
$$;
COMMENT ON FUNCTION orchestration.lock_runs(bigint[]) IS
  'Internal (RULE workers): locks the rows of these runs for a worker''s writes (FOR NO KEY UPDATE), in id order, waiting for each: the order every writer of several runs takes them in';
REVOKE ALL ON FUNCTION orchestration.lock_runs(bigint[]) FROM PUBLIC;
-- ==== End of: the lock order across runs (issue 16) =================================================

-- ==== No foreign key on an attempt's node (issue 16) ================================================
-- agent_runs.run_node_id's check was a statement per attempt recorded; triggers on the nodes
-- do what its ON DELETE CASCADE did.
ALTER TABLE orchestration.agent_runs DROP CONSTRAINT agent_runs_run_node_id_fkey;
-- run_node_id is not a foreign key either (since 0.2.0): its check was a statement per
-- attempt recorded, about a tenth of what record_attempts costs a node of a wide round
-- (README, Performance). The nodes_deleted trigger does what its ON DELETE CASCADE did.
-- Only the extension's own functions write attempts; one recorded while a DBA deletes its
-- node alone (not its run) outlives it, since nothing waits for the node now.
COMMENT ON COLUMN orchestration.agent_runs.run_node_id IS
  'The node this was an attempt of; deleted with it (the nodes_deleted trigger), and so with its run';

-- What ON DELETE CASCADE did for a node's attempts (10_tables.sql says why run_node_id is
-- not a foreign key): whoever deletes nodes, the runs_deleted trigger or a DBA, deletes
-- their attempts. Probed by the deleted ids through the run_node_id index, however the
-- planner would guess the size of the transition table.
CREATE FUNCTION orchestration.delete_attempts_of_deleted_nodes() RETURNS trigger
LANGUAGE plpgsql
-- As a foreign key's action ran: as the owner (forget_deleted_agents says why).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  DELETE FROM orchestration.agent_runs a WHERE a.run_node_id = ANY (ARRAY(SELECT d.id FROM deleted_nodes d));
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.delete_attempts_of_deleted_nodes() IS
  'Internal (trigger on workflow_run_nodes): deletes the attempts (agent_runs) of deleted nodes';
CREATE TRIGGER nodes_deleted AFTER DELETE ON orchestration.workflow_run_nodes
  REFERENCING OLD TABLE AS deleted_nodes FOR EACH STATEMENT
  EXECUTE FUNCTION orchestration.delete_attempts_of_deleted_nodes();

-- And what TRUNCATE ... CASCADE did through that key: truncating the nodes (which takes
-- the approvals with them, by theirs) truncates the attempts.
CREATE FUNCTION orchestration.truncate_attempts_of_truncated_nodes() RETURNS trigger
LANGUAGE plpgsql
-- As the owner, as forget_deleted_agents (30_registry.sql) says.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  TRUNCATE orchestration.agent_runs;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.truncate_attempts_of_truncated_nodes() IS
  'Internal (trigger on workflow_run_nodes): truncates the attempts (agent_runs) when the nodes are truncated';
CREATE TRIGGER nodes_truncated AFTER TRUNCATE ON orchestration.workflow_run_nodes
  FOR EACH STATEMENT EXECUTE FUNCTION orchestration.truncate_attempts_of_truncated_nodes();

-- The attempts go by the trigger now, not by the key.
COMMENT ON FUNCTION orchestration.delete_nodes_of_deleted_runs() IS
  'Internal (trigger on workflow_runs): deletes the attempts and nodes of deleted runs (and so their approvals, by their foreign key)';
COMMENT ON FUNCTION orchestration.truncate_nodes_of_truncated_runs() IS
  'Internal (trigger on workflow_runs): truncates the attempts and deletes every run node when the runs are truncated';
REVOKE ALL ON FUNCTION
  orchestration.delete_attempts_of_deleted_nodes(),
  orchestration.truncate_attempts_of_truncated_nodes()
FROM PUBLIC;
-- ==== End of: no foreign key on an attempt's node (issue 16) ========================================
