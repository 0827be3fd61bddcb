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
COMMENT ON FUNCTION orchestration.resolve_rule_function(text, name) IS
  'Checks a RULE agent''s function (schema-qualified, (jsonb) returns jsonb, executable by the caller in a schema it may use, owned by the caller, a role with its privileges or a superuser) and returns it as regprocedure text';

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
    spec - ARRAY['id', 'project_id', 'registered_by', 'registered_at', 'updated_at', 'runs_as']);
  PERFORM orchestration.store_agent(
    agent_id, (target.agent).project_id, normalized,
    CASE WHEN normalized->>'type' = 'RULE'
         THEN orchestration.resolve_rule_function(normalized->>'function', target.caller) END,
    target.caller);
  RETURN (SELECT orchestration.agent_json(a) FROM orchestration.agents a WHERE a.id = agent_id);
END
$$;
COMMENT ON FUNCTION orchestration.update_agent(bigint, jsonb) IS
  'Replaces an agent''s spec (the whole spec, as register_agent takes it; to change one field pass get_agent(id) || ''{"version": "2"}'') and returns the agent as get_agent shows it. A capability used by a workflow cannot be removed. A RULE agent then runs as the caller (runs_as), who must be allowed to execute its function';

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
