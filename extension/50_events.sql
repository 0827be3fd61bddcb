CREATE FUNCTION orchestration.wake_relay() RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_relay';
COMMENT ON FUNCTION orchestration.wake_relay() IS
  'Internal: wakes this database''s NATS relay when the calling transaction commits (nothing happens on rollback)';

-- The transactional outbox. Every run, node and approval state change calls emit_event()
-- in the transaction that makes the change, so an event exists if and only if the change
-- committed. NOTIFY orchestration_events tells LISTENing clients at once; the NATS relay
-- publishes the rows in id order.

CREATE FUNCTION orchestration.emit_event(project_id integer, entity text, event text,
                                         run_id bigint, node_key text, data jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  event_id bigint;
  event_type text := 'orchestration.' || entity || '.' || event;
  subject text := 'run/' || run_id || CASE WHEN node_key IS NULL THEN '' ELSE '/node/' || node_key END;
  run_traceparent text;
BEGIN
  SELECT r.traceparent INTO run_traceparent FROM orchestration.workflow_runs r WHERE r.id = run_id;
  INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
  VALUES (project_id, event_type, subject, run_id,
          jsonb_build_object(
            'specversion', '1.0',
            'id', gen_random_uuid()::text,
            'source', format('/orchestration/%s/%s', current_database(), project_id),
            'type', event_type,
            'subject', subject,
            'time', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            'datacontenttype', 'application/json',
            'data', jsonb_build_object('project_id', project_id, 'run_id', run_id,
                                       'traceparent', run_traceparent)
                    || CASE WHEN node_key IS NULL THEN '{}'::jsonb
                            ELSE jsonb_build_object('node', node_key) END
                    || coalesce(data, '{}')))
  RETURNING e.id INTO event_id;
  PERFORM pg_notify('orchestration_events',
                    json_build_object('id', event_id, 'type', event_type, 'run_id', run_id)::text);
  PERFORM orchestration.wake_relay();
END
$$;
COMMENT ON FUNCTION orchestration.emit_event(integer, text, text, bigint, text, jsonb) IS
  'Internal: writes one CloudEvents 1.0 document to the outbox (orchestration.events) sends NOTIFY orchestration_events with its id, type and run id, and wakes the NATS relay at commit. Runs in the caller''s transaction: a rollback emits nothing';
