-- Spans for OpenTelemetry. While orchestration.otlp_endpoint is set, every finished run and
-- every node attempt leaves a span (OTLP JSON) in span_queue, in the transaction that
-- finished it; the relay worker sends them to the endpoint and deletes what was accepted.
-- A run's span is a child of its caller's (context.traceparent), an attempt's a child of
-- its run's: the same ids the events and the containers' TRACEPARENT carry.

CREATE FUNCTION orchestration.tracing_enabled() RETURNS boolean
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'orch_tracing_enabled';
COMMENT ON FUNCTION orchestration.tracing_enabled() IS
  'Internal: whether orchestration.otlp_endpoint is set, so that spans are kept for the relay to send';

-- An OTLP/JSON span (opentelemetry-proto, JSON encoding): ids in hex, times in nanoseconds
-- since the epoch as strings, status 1 (OK) or 2 (ERROR).
CREATE FUNCTION orchestration.otlp_span(traceparent text, parent text, name text,
                                        started_at timestamptz, finished_at timestamptz,
                                        failed boolean, message text, attributes jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'traceId', split_part(traceparent, '-', 2),
           'spanId', split_part(traceparent, '-', 3),
           -- The parent only when it is in the same trace (a caller's invalid traceparent
           -- started a new trace: the run is its root).
           'parentSpanId', CASE WHEN split_part(parent, '-', 2) = split_part(traceparent, '-', 2)
                                     AND split_part(parent, '-', 3) <> split_part(traceparent, '-', 3)
                                THEN split_part(parent, '-', 3) END,
           'name', name,
           'kind', 1,
           'startTimeUnixNano', ((extract(epoch FROM started_at) * 1000000)::bigint * 1000)::text,
           'endTimeUnixNano', ((extract(epoch FROM coalesce(finished_at, started_at)) * 1000000)::bigint * 1000)::text,
           'attributes', (SELECT coalesce(jsonb_agg(jsonb_build_object('key', a.key, 'value',
                                   CASE jsonb_typeof(a.value) WHEN 'number' THEN jsonb_build_object('intValue', a.value::text)
                                        ELSE jsonb_build_object('stringValue', a.value #>> '{}') END) ORDER BY a.key), '[]')
                          FROM jsonb_each(jsonb_strip_nulls(attributes)) a),
           'status', jsonb_build_object('code', CASE WHEN failed THEN 2 ELSE 1 END,
                                        'message', CASE WHEN failed THEN message END)))
$$;
COMMENT ON FUNCTION orchestration.otlp_span(text, text, text, timestamptz, timestamptz, boolean, text, jsonb) IS
  'Internal: one span in the OTLP/JSON encoding, from a W3C traceparent (its trace and span id), its parent''s, a name, start and end, whether it failed (and why) and attributes (a flat JSON object)';

-- Attempts are inserted a claim round at a time: one statement-level trigger per insert.
CREATE FUNCTION orchestration.queue_attempt_spans() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF orchestration.tracing_enabled() THEN
    INSERT INTO orchestration.span_queue (span)
    SELECT orchestration.otlp_span(
             a.traceparent, r.traceparent, a.agent_name || '.' || n.action, a.started_at, a.finished_at,
             a.status <> 'SUCCESS', a.error,
             jsonb_build_object('orchestration.project_id', a.project_id, 'orchestration.run_id', a.run_id,
                                'orchestration.node', n.node_key, 'orchestration.attempt', a.attempt,
                                'orchestration.agent', a.agent_name, 'orchestration.action', n.action,
                                'container.id', a.container_id, 'process.exit.code', a.exit_code))
    FROM attempts a
    JOIN orchestration.workflow_run_nodes n ON n.id = a.run_node_id
    JOIN orchestration.workflow_runs r ON r.id = a.run_id
    WHERE a.traceparent IS NOT NULL
    ORDER BY a.id;
    PERFORM orchestration.wake_relay();
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.queue_attempt_spans() IS
  'Internal (trigger on agent_runs): while orchestration.otlp_endpoint is set, queues a span per new attempt, a child of its run''s span';
-- Fired only while tracing is on: the scheduler inserts attempts in its hot path, and a
-- PL/pgSQL call per statement that does nothing costs a chain step a tenth of its time.
CREATE TRIGGER attempt_spans AFTER INSERT ON orchestration.agent_runs
  REFERENCING NEW TABLE AS attempts FOR EACH STATEMENT
  WHEN (orchestration.tracing_enabled())
  EXECUTE FUNCTION orchestration.queue_attempt_spans();

CREATE FUNCTION orchestration.queue_run_span() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF orchestration.tracing_enabled() THEN
    INSERT INTO orchestration.span_queue (span)
    SELECT orchestration.otlp_span(
             NEW.traceparent, NEW.context->>'traceparent', 'run ' || w.name,
             coalesce(NEW.started_at, NEW.created_at), coalesce(NEW.finished_at, clock_timestamp()),
             NEW.status <> 'SUCCESS', coalesce(NEW.error, 'run ' || lower(NEW.status::text)),
             jsonb_build_object('orchestration.project_id', NEW.project_id, 'orchestration.run_id', NEW.id,
                                'orchestration.workflow', w.name, 'orchestration.workflow_version', NEW.workflow_version,
                                'orchestration.trigger', NEW.trigger, 'orchestration.status', NEW.status,
                                'orchestration.started_by', NEW.started_by))
    FROM orchestration.workflows w WHERE w.id = NEW.workflow_id;
    PERFORM orchestration.wake_relay();
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.queue_run_span() IS
  'Internal (trigger on workflow_runs): while orchestration.otlp_endpoint is set, queues the span of a run that has just ended (SUCCESS, FAILED or CANCELLED), a child of its caller''s span';
-- While tracing is off, the WHEN clause keeps the function from being called at all (a
-- call per finished run), as attempt_spans's does.
CREATE TRIGGER run_spans AFTER UPDATE OF status ON orchestration.workflow_runs
  FOR EACH ROW WHEN (NEW.status IN ('SUCCESS', 'FAILED', 'CANCELLED') AND OLD.status IS DISTINCT FROM NEW.status
                     AND orchestration.tracing_enabled())
  EXECUTE FUNCTION orchestration.queue_run_span();

-- Only the extension's owner (the workers, the API's SECURITY DEFINER functions) reads or
-- writes the queue: no grants, and row-level security with no policy for anyone else.
ALTER TABLE orchestration.span_queue ENABLE ROW LEVEL SECURITY;

-- The relay's side.
CREATE FUNCTION orchestration.spans_to_send(max_spans integer) RETURNS TABLE (id bigint, span text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT q.id, q.span::text FROM orchestration.span_queue q ORDER BY q.id LIMIT max_spans
$$;
COMMENT ON FUNCTION orchestration.spans_to_send(integer) IS
  'Internal (relay): the oldest queued spans, as OTLP JSON text';

CREATE FUNCTION orchestration.spans_sent(span_ids bigint[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM orchestration.span_queue q WHERE q.id = ANY (span_ids) $$;
COMMENT ON FUNCTION orchestration.spans_sent(bigint[]) IS
  'Internal (relay): forgets spans the OTLP endpoint accepted';
