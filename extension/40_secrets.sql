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
