-- Contracts: JSON Schemas for a capability's input and output. Checked when an agent is
-- registered, enforced by the engine, and available to anyone as SQL functions.
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 900000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;

-- The SQL functions.
SELECT orchestration.json_schema_valid('{"type": "object", "required": ["id"]}', '{"id": 1}') AS valid,
       orchestration.json_schema_valid('{"type": "object", "required": ["id"]}', '{}') AS missing_id;
SELECT * FROM orchestration.json_schema_errors(
  '{"type": "object", "properties": {"findings": {"type": "array", "items": {"type": "object",
     "required": ["severity"], "properties": {"severity": {"enum": ["low", "medium", "high"]}}}}}}',
  '{"findings": [{"severity": "urgent"}, {"severity": "low"}, {}]}');
SELECT count(*) AS errors FROM orchestration.json_schema_errors('{"minimum": 0}', '5');
SELECT * FROM orchestration.json_schema_errors('{"$defs": {"id": {"type": "integer", "minimum": 1}}, "items": {"$ref": "#/$defs/id"}, "uniqueItems": true}', '[1, 0, 1]');
SELECT orchestration.json_schema_valid('{"type": "strng"}', '1');
SELECT orchestration.json_schema_valid('{"properties": {"a": {"$ref": "#/$defs/a"}}}', '{}');
SELECT orchestration.json_schema_valid('true', '{"anything": [1, 2]}') AS true_schema,
       orchestration.json_schema_valid('false', 'null') AS false_schema;

-- A schema that is not itself valid is refused when the agent is registered.
CREATE FUNCTION public.classify(input jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('findings', jsonb_build_array(jsonb_build_object('severity', input->>'severity')))
$$;
SELECT orchestration.register_agent(71, '{"name": "bad-contract", "type": "RULE", "function": "public.classify",
  "capabilities": [{"name": "check", "output_schema": {"type": "object", "properties": {"findings": {"minItems": "one"}}}}]}');
SELECT orchestration.register_agent(71, '{"name": "bad-contract", "type": "RULE", "function": "public.classify",
  "capabilities": [{"name": "check", "input_schema": {"$ref": "#/definitions/text"}}]}');
SELECT count(*) AS registered FROM orchestration.agents WHERE project_id = 71;

-- The engine: inputs are checked before the agent runs, outputs before the node succeeds.
SELECT orchestration.register_agent(71, $${"name": "classifier", "type": "RULE", "function": "public.classify",
  "capabilities": [{"name": "check",
    "input_schema": {"type": "object", "required": ["text", "severity"], "properties": {"text": {"type": "string", "minLength": 1}}},
    "output_schema": {"type": "object", "required": ["findings"], "properties": {"findings": {"type": "array",
      "items": {"type": "object", "properties": {"severity": {"enum": ["low", "medium", "high"]}}}}}}}]}$$) AS classifier_id \gset
SELECT orchestration.create_workflow(71, $${"name": "classify", "nodes": [
  {"id": "check", "agent": "classifier", "action": "check", "retries": 1, "retry_backoff_seconds": 0,
   "inputs": {"text": "{{ context.text }}", "severity": "{{ context.severity }}"}}]}$$) > 0 AS created;

-- Good input, good output: SUCCESS.
SELECT orchestration.start_workflow(71, 'classify', '{"text": "key=AKIA...", "severity": "high"}') AS good_run \gset
SELECT r->>'status' AS status, r->'nodes'->0->'output' AS output FROM orchestration.wait_for_run(:good_run, '30 seconds') r;

-- Bad input: the node fails before the agent runs; no attempt is made.
SELECT orchestration.start_workflow(71, 'classify', '{"text": "", "severity": "high"}') AS bad_input \gset
SELECT r->>'status' AS status, r->'nodes'->0->>'error' AS error FROM orchestration.wait_for_run(:bad_input, '30 seconds') r;
SELECT count(*) AS attempts FROM orchestration.agent_runs WHERE run_id = :bad_input;

-- Bad output: the attempt fails and is retried; the bad output is kept on each attempt.
SELECT orchestration.start_workflow(71, 'classify', '{"text": "x", "severity": "urgent"}') AS bad_output \gset
SELECT r->>'status' AS status, r->'nodes'->0->>'error' AS error FROM orchestration.wait_for_run(:bad_output, '30 seconds') r;
SELECT attempt, status, error, output_json FROM orchestration.agent_runs WHERE run_id = :bad_output ORDER BY attempt;

-- A changed contract applies to the next run (the scheduler's compiled copy is refreshed).
SELECT orchestration.update_agent(:classifier_id, jsonb_set(orchestration.get_agent(:classifier_id),
  '{capabilities,0,output_schema,properties,findings,items,properties,severity,enum}', '["low", "medium", "high", "urgent"]'))->>'name' AS updated;
SELECT orchestration.start_workflow(71, 'classify', '{"text": "x", "severity": "urgent"}') AS after_update \gset
SELECT r->>'status' AS status FROM orchestration.wait_for_run(:after_update, '30 seconds') r;
