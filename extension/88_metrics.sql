-- Metrics: orchestration.metric_samples (a view, for psql) and orchestration.metrics()
-- (the same numbers in the Prometheus text exposition format, for a scraper). Both read
-- through row-level security: a role sees its projects' numbers.

CREATE VIEW orchestration.metric_samples WITH (security_invoker = true) AS
WITH buckets(le) AS (VALUES (0.01), (0.05), (0.1), (0.5), (1), (5), (30), (120), (600)),
durations AS (
  SELECT n.project_id, extract(epoch FROM n.finished_at - n.started_at)::float8 AS seconds
  FROM orchestration.workflow_run_nodes n
  WHERE n.finished_at IS NOT NULL AND n.started_at IS NOT NULL)
SELECT 'orchestration_runs' AS metric, jsonb_build_object('project', r.project_id::text, 'status', r.status::text) AS labels,
       count(*)::float8 AS value
FROM orchestration.workflow_runs r GROUP BY r.project_id, r.status
UNION ALL
SELECT 'orchestration_nodes', jsonb_build_object('project', n.project_id::text, 'status', n.status::text), count(*)
FROM orchestration.workflow_run_nodes n GROUP BY n.project_id, n.status
UNION ALL
SELECT 'orchestration_node_duration_seconds_bucket', jsonb_build_object('project', d.project_id::text, 'le', b.le::text),
       count(*) FILTER (WHERE d.seconds <= b.le)
FROM durations d CROSS JOIN buckets b GROUP BY d.project_id, b.le
UNION ALL
SELECT 'orchestration_node_duration_seconds_bucket', jsonb_build_object('project', d.project_id::text, 'le', '+Inf'), count(*)
FROM durations d GROUP BY d.project_id
UNION ALL
SELECT 'orchestration_node_duration_seconds_sum', jsonb_build_object('project', d.project_id::text), sum(d.seconds)
FROM durations d GROUP BY d.project_id
UNION ALL
SELECT 'orchestration_node_duration_seconds_count', jsonb_build_object('project', d.project_id::text), count(*)
FROM durations d GROUP BY d.project_id
UNION ALL
SELECT 'orchestration_queue_depth', '{}', count(*)
FROM orchestration.workflow_run_nodes n JOIN orchestration.workflow_runs r ON r.id = n.run_id
WHERE n.status = 'PENDING' AND n.pending_deps = 0 AND r.status IN ('PENDING', 'RUNNING')
UNION ALL
SELECT 'orchestration_running_containers', '{}', count(*)
FROM orchestration.workflow_run_nodes n WHERE n.status = 'RUNNING' AND n.container_name IS NOT NULL
UNION ALL
SELECT 'orchestration_pending_approvals', '{}', count(*)
FROM orchestration.workflow_approvals a WHERE a.status = 'PENDING'
UNION ALL
SELECT 'orchestration_outbox_backlog', '{}', count(*)
FROM orchestration.events e WHERE e.published_at IS NULL
UNION ALL
SELECT 'orchestration_relay_lag_seconds', '{}',
       coalesce(extract(epoch FROM now() - min(e.created_at)), 0)::float8
FROM orchestration.events e WHERE e.published_at IS NULL
UNION ALL
-- A counter: each container attempt counts once, while it runs (its node holds the
-- container) and then as its recorded attempt; it drops only when runs are deleted.
SELECT 'orchestration_container_starts_total', jsonb_build_object('project', c.project_id::text), count(*)
FROM (SELECT a.project_id FROM orchestration.agent_runs a WHERE a.container_id IS NOT NULL
      UNION ALL
      SELECT n.project_id FROM orchestration.workflow_run_nodes n
      WHERE n.status = 'RUNNING' AND n.container_name IS NOT NULL) c
GROUP BY c.project_id;
COMMENT ON VIEW orchestration.metric_samples IS
  'Every metric orchestration.metrics() exports, one row per sample (metric, labels, value): runs and nodes by project and status, node duration histogram, queue depth (runnable nodes), running containers, pending approvals, outbox backlog, relay lag (age of the oldest unpublished event) and containers started per project';

CREATE FUNCTION orchestration.metrics() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH families(family, type, help, ord) AS (VALUES
    ('orchestration_runs', 'gauge', 'Workflow runs by project and status.', 1),
    ('orchestration_nodes', 'gauge', 'Run nodes by project and status.', 2),
    ('orchestration_node_duration_seconds', 'histogram', 'Time from a node''s start to its end, finished nodes.', 3),
    ('orchestration_queue_depth', 'gauge', 'Nodes runnable now, waiting for the scheduler.', 4),
    ('orchestration_running_containers', 'gauge', 'Container nodes running.', 5),
    ('orchestration_pending_approvals', 'gauge', 'Approvals waiting for an answer.', 6),
    ('orchestration_outbox_backlog', 'gauge', 'Events not yet published to NATS.', 7),
    ('orchestration_relay_lag_seconds', 'gauge', 'Age of the oldest event not yet published to NATS (0: none).', 8),
    ('orchestration_container_starts_total', 'counter', 'Containers started for node attempts, by project.', 9)),
  lines AS (
    SELECT f.ord, 0 AS sub, '# HELP ' || f.family || ' ' || f.help || E'\n# TYPE ' || f.family || ' ' || f.type AS line,
           NULL::text AS project, NULL::text AS metric, NULL::float8 AS le, NULL::text AS status
    FROM families f
    UNION ALL
    SELECT f.ord, 1, s.metric
           || coalesce('{' || (SELECT string_agg(key || '="' || replace(replace(value, '\', '\\'), '"', '\"') || '"', ','
                                                 ORDER BY key = 'le', key)
                               FROM jsonb_each_text(s.labels)) || '}', '')
           || ' ' || CASE WHEN s.value = 'Infinity' THEN '+Inf' ELSE s.value::text END,
           s.labels->>'project', s.metric, (s.labels->>'le')::float8, s.labels->>'status'
    FROM orchestration.metric_samples s
    JOIN families f ON s.metric = f.family OR s.metric LIKE f.family || '\_%' AND f.type = 'histogram')
  -- Per family: HELP and TYPE, then by project; a histogram's buckets in increasing le, then _count and _sum.
  SELECT string_agg(line, E'\n' ORDER BY ord, sub, project, metric, le, status) || E'\n' FROM lines
$$;
COMMENT ON FUNCTION orchestration.metrics() IS
  'The metrics of orchestration.metric_samples in the Prometheus text exposition format (version 0.0.4), what the metrics worker serves on orchestration.metrics_listen as GET /metrics; sees the caller''s projects (a superuser or a role granted every project sees all)';

GRANT SELECT ON orchestration.metric_samples TO orchestration_admin, orchestration_operator, orchestration_approver;
