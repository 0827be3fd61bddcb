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
