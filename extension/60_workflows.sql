-- Workflow definitions: create, update, archive, read, and the DAG's topological levels.

CREATE FUNCTION orchestration.normalize_workflow_spec(spec jsonb) RETURNS jsonb
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'orch_normalize_workflow_spec';
COMMENT ON FUNCTION orchestration.normalize_workflow_spec(jsonb) IS
  'Validates a workflow spec (fields, node ids, depends_on, templates, conditions, no cycles, templates reading only upstream outputs) without touching the database and returns it with defaults filled in and, per node, its template references ("refs") and the nodes depending on it ("dependents"). Levels are not its business: store_workflow_nodes computes them in SQL';

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
  'Each node of a workflow with its topological depth (0: no dependencies; else one more than its deepest dependency), as store_workflow_nodes computed it with a recursive CTE over the edges (Kahn''s algorithm, level by level) when the workflow was defined. The scheduler dispatches runnable nodes in this order';

-- Writes a normalized spec's nodes for a workflow, replacing what was there: resolves
-- each node's agent (by name, in the workflow's project) and action (a capability), and
-- gives each node its level, the one place levels are computed (see below).
-- It reads the spec itself, never a scratch table: this runs inside SECURITY DEFINER
-- functions, and a table name not qualified by its schema would be looked up in the
-- caller's pg_temp, where a caller could have put a table with a trigger of its own.
CREATE FUNCTION orchestration.store_workflow_nodes(workflow_id bigint, project_id integer, spec jsonb)
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
COMMENT ON FUNCTION orchestration.store_workflow_nodes(bigint, integer, jsonb) IS
  'Internal: replaces a workflow''s nodes with those of a normalized spec (whose graph normalize_workflow_spec checked), resolving agents and actions in the project, and computes each node''s level (its topological depth) with a recursive CTE over the stored edges: Kahn''s algorithm level by level, polynomial (edges plus, per node, the levels between its first and last dependency), never path by path';

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
  INSERT INTO orchestration.workflows AS w (project_id, name, description, trigger, status, created_by, updated_by)
  VALUES (project_id, normalized->>'name', normalized->>'description', normalized->'trigger',
          (normalized->>'status')::orchestration.workflow_status, caller, caller)
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
    version = w.version + 1, updated_at = now(), updated_by = target.caller
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
  -- No longer the spec last put: putting it again brings the workflow back.
  UPDATE orchestration.workflows w SET status = 'ARCHIVED', updated_at = now(), spec_digest = NULL
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
