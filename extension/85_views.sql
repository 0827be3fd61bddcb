-- Views for psql. security_invoker makes row-level security apply to the caller, so a
-- role sees only its projects' rows here too.

CREATE VIEW orchestration.run_summary WITH (security_invoker = true) AS
SELECT r.id AS run_id, r.project_id, w.name AS workflow, r.status,
       count(n.id) AS nodes,
       count(n.id) FILTER (WHERE n.status = 'SUCCESS') AS succeeded,
       count(n.id) FILTER (WHERE n.status = 'FAILED') AS failed,
       count(n.id) FILTER (WHERE n.status = 'RUNNING') AS running,
       count(n.id) FILTER (WHERE n.status = 'PENDING') AS pending,
       count(n.id) FILTER (WHERE n.status = 'WAITING_APPROVAL') AS waiting,
       count(n.id) FILTER (WHERE n.status = 'SKIPPED') AS skipped,
       count(n.id) FILTER (WHERE n.status = 'CANCELLED') AS cancelled,
       round(100.0 * count(n.id) FILTER (WHERE n.status IN ('SUCCESS', 'FAILED', 'SKIPPED', 'CANCELLED'))
             / greatest(count(n.id), 1)) AS percent_done,
       r.trigger, r.started_by, r.created_at, r.started_at, r.finished_at,
       coalesce(r.finished_at, now()) - coalesce(r.started_at, r.created_at) AS elapsed,
       r.error
FROM orchestration.workflow_runs r
JOIN orchestration.workflows w ON w.id = r.workflow_id
LEFT JOIN orchestration.workflow_run_nodes n ON n.run_id = r.id
GROUP BY r.id, w.name;
COMMENT ON VIEW orchestration.run_summary IS
  'One row per run: workflow, status, how many nodes are in each status, percent done, timings and the error. Filter it: WHERE status = ''RUNNING'' or ORDER BY run_id DESC LIMIT 20';

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

GRANT SELECT ON orchestration.run_summary, orchestration.node_runs, orchestration.pending_approvals
  TO orchestration_admin, orchestration_operator, orchestration_approver;
