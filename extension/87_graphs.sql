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
