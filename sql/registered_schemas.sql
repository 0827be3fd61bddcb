-- Shared definitions: JSON Schemas registered in a project under a URI, which its
-- capabilities' schemas $ref. Validated when stored; unchangeable while in use (a new
-- version is a new URI); only the capability's own project's schemas resolve.
\set SHOW_CONTEXT never
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 950000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'registered_schemas']) t; END $$;

-- Registering: checked as it is stored, and may refer to the project's other schemas.
SELECT orchestration.register_schema(72, 'https://example.com/schemas/address/v1', $${
  "type": "object", "required": ["street", "city"],
  "properties": {"street": {"type": "string"}, "city": {"type": "string"}, "zip": {"$ref": "#zip"}},
  "$defs": {"zip": {"$anchor": "zip", "type": "string", "pattern": "^[0-9]{5}$"}}}$$) AS address_id;
SELECT orchestration.register_schema(72, 'https://example.com/schemas/customer/v1', $${
  "type": "object", "required": ["name"],
  "properties": {"name": {"type": "string"}, "address": {"$ref": "../address/v1"}}}$$) AS customer_id;
SELECT uri, uses FROM orchestration.registered_schemas WHERE project_id = 72 ORDER BY uri;
-- The same again changes nothing.
SELECT orchestration.register_schema(72, 'https://example.com/schemas/address/v1', schema) AS same_id
FROM orchestration.registered_schemas WHERE project_id = 72 AND uri = 'https://example.com/schemas/address/v1';
-- Refused: an invalid schema, a reference that resolves nowhere, a relative URI.
SELECT orchestration.register_schema(72, 'https://example.com/schemas/bad', '{"type": "text"}');
SELECT orchestration.register_schema(72, 'https://example.com/schemas/bad', '{"$ref": "address/v2"}');
SELECT orchestration.register_schema(72, 'schemas/address', '{}');

-- A capability refers to them; its schemas are checked with the project's registered ones.
CREATE FUNCTION public.lookup_customer(input jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('customers', jsonb_build_array(input->'customer'))
$$;
SELECT orchestration.register_agent(72, '{"name": "crm-bad", "type": "RULE", "function": "public.lookup_customer",
  "capabilities": [{"name": "lookup", "input_schema": {"$ref": "https://example.com/schemas/customer/v2"}}]}');
SELECT orchestration.register_agent(72, $${"name": "crm", "type": "RULE", "function": "public.lookup_customer",
  "capabilities": [{"name": "lookup",
    "input_schema": {"type": "object", "properties": {"customer": {"$ref": "https://example.com/schemas/customer/v1"}}},
    "output_schema": {"type": "object", "properties": {"customers": {"type": "array",
      "items": {"$ref": "https://example.com/schemas/customer/v1"}}}}}]}$$) AS crm_id \gset
SELECT name, schema_refs FROM orchestration.agent_capabilities WHERE agent_id = :crm_id;
SELECT orchestration.create_workflow(72, $${"name": "lookup", "nodes": [
  {"id": "lookup", "agent": "crm", "action": "lookup", "inputs": {"customer": "{{ context.customer }}"}}]}$$) > 0 AS created;

-- The engine validates through the references; messages name the path and the schema.
SELECT orchestration.start_workflow(72, 'lookup', '{"customer": {"name": "Ada", "address": {"street": "1 Main St", "city": "Springfield", "zip": "12345"}}}') AS good_run \gset
SELECT r->>'status' AS status FROM orchestration.wait_for_run(:good_run, '30 seconds') r;
SELECT orchestration.start_workflow(72, 'lookup', '{"customer": {"name": "Ada", "address": {"street": "1 Main St", "zip": "1"}}}') AS bad_run \gset
SELECT r->>'status' AS status, r->'nodes'->0->>'error' AS error FROM orchestration.wait_for_run(:bad_run, '30 seconds') r;

-- In use, a registered schema cannot change, directly or through a schema that uses it;
-- a new version is a new URI.
SELECT orchestration.register_schema(72, 'https://example.com/schemas/address/v1', '{"type": "object"}');
SELECT orchestration.delete_schema(72, 'https://example.com/schemas/customer/v1');
SELECT orchestration.register_schema(72, 'https://example.com/schemas/customer/v2', $${
  "type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}$$) > 0 AS registered_v2;
SELECT orchestration.update_agent(:crm_id, jsonb_set(jsonb_set(orchestration.get_agent(:crm_id),
  '{capabilities,0,input_schema,properties,customer,$ref}', '"https://example.com/schemas/customer/v2"'),
  '{capabilities,0,output_schema,properties,customers,items,$ref}', '"https://example.com/schemas/customer/v2"'))->>'name' AS updated;
SELECT name, schema_refs FROM orchestration.agent_capabilities WHERE agent_id = :crm_id;
SELECT orchestration.delete_schema(72, 'https://example.com/schemas/customer/v1');
SELECT orchestration.register_schema(72, 'https://example.com/schemas/address/v1', '{"type": "object"}') > 0 AS changed_unused;
SELECT uri, uses FROM orchestration.registered_schemas WHERE project_id = 72 ORDER BY uri;

-- Another project's URIs do not resolve.
SELECT orchestration.register_agent(73, $${"name": "crm", "type": "RULE", "function": "public.lookup_customer",
  "capabilities": [{"name": "lookup", "input_schema": {"$ref": "https://example.com/schemas/customer/v2"}}]}$$);
