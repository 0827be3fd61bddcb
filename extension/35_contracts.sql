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
