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
                           'workflow_approvals', 'events', 'secrets', 'registered_schemas']
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

-- Who is calling, in C: inside the scheduler, a RULE attempt runs as its agent's role,
-- and only C code of the worker knows that (a setting could be changed by the function
-- itself); elsewhere the SET ROLE role or the login.
CREATE FUNCTION orchestration.calling_role() RETURNS name
-- PARALLEL RESTRICTED: a parallel worker would not know the RULE attempt's role.
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'orch_calling_role';
COMMENT ON FUNCTION orchestration.calling_role() IS
  'The role on whose behalf the API is called: inside a RULE attempt, the agent''s runs_as role; else the SET ROLE role, else the session user. Unlike current_user it is not changed by SECURITY DEFINER functions, so the API''s functions can check the real caller';

CREATE FUNCTION orchestration.calling_login() RETURNS name
-- PARALLEL RESTRICTED: a parallel worker would not know the RULE attempt's role.
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'orch_calling_login';
COMMENT ON FUNCTION orchestration.calling_login() IS
  'The person behind the call: inside a RULE attempt, the agent''s runs_as role; else the session user (the login), whatever role it has switched to with SET ROLE. Four-eyes approvals compare it';

CREATE FUNCTION orchestration.in_rule_attempt() RETURNS boolean
-- PARALLEL RESTRICTED: a parallel worker would not know the RULE attempt's role.
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'orch_in_rule_attempt';
COMMENT ON FUNCTION orchestration.in_rule_attempt() IS
  'Whether the call comes from a RULE agent''s function, run by the scheduler; approvals refuse answers from agents';

CREATE FUNCTION orchestration.rule_call() RETURNS jsonb
-- PARALLEL RESTRICTED: a parallel worker would not know the RULE attempt.
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'orch_rule_call';
COMMENT ON FUNCTION orchestration.rule_call() IS
  'Inside a RULE agent''s function: what it was called for, {"capability", "agent", "run_id", "node_key", "attempt"} (one function can serve several capabilities); NULL anywhere else';

-- Whether a role has a project: a grant to it or to a role it belongs to.
-- PL/pgSQL, as may_run_as below: an SQL function with a SET clause is never inlined, and
-- its statement is planned again at every call (its plan lives as long as the calling
-- expression); PL/pgSQL keeps the plan for the session.
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
-- Asked before a RULE node's first attempt in a pass, so on a caller's path to its result:
-- PL/pgSQL keeps its plan (as SQL with a SET clause it cost 0.2 ms a call, mostly planning).
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
