CREATE FUNCTION orchestration.wake_relay() RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_relay';
COMMENT ON FUNCTION orchestration.wake_relay() IS
  'Internal: wakes this database''s NATS relay when the calling transaction commits (nothing happens on rollback)';

-- The transactional outbox. Every run, node and approval state change calls emit_event()
-- in the transaction that makes the change, so an event exists if and only if the change
-- committed. NOTIFY orchestration_events tells LISTENing clients at once; the NATS relay
-- publishes the rows in id order.

-- emit_events writes a batch (the scheduler records a claim round at once); emit_event is
-- the one-event case. Both build the document in one place.
CREATE FUNCTION orchestration.emit_events(project_ids integer[], types text[], run_ids bigint[],
                                          node_keys text[], data jsonb[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  emitted bigint;
BEGIN
  WITH inserted AS (
    INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
    SELECT u.project_id, u.type, u.subject, u.run_id,
           jsonb_build_object(
             'specversion', '1.0',
             'id', gen_random_uuid()::text,
             'source', format('/orchestration/%s/%s', current_database(), u.project_id),
             'type', u.type,
             'subject', u.subject,
             'time', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
             'datacontenttype', 'application/json',
             'data', jsonb_build_object('project_id', u.project_id, 'run_id', u.run_id,
                                        'traceparent', r.traceparent)
                     || CASE WHEN u.node_key IS NULL THEN '{}'::jsonb
                             ELSE jsonb_build_object('node_key', u.node_key) END
                     || coalesce(u.data, '{}'))
    FROM (SELECT u.*, 'run/' || u.run_id || coalesce('/node/' || u.node_key, '') AS subject
          FROM unnest(project_ids, types, run_ids, node_keys, data) WITH ORDINALITY
               AS u(project_id, type, run_id, node_key, data, position)) u
    LEFT JOIN orchestration.workflow_runs r ON r.id = u.run_id
    ORDER BY u.position
    RETURNING e.id, e.type, e.run_id
  )
  -- Any login role may LISTEN (PostgreSQL cannot restrict it), so by default a
  -- notification says only that events were written (identical payloads of one
  -- transaction fold into one notification); listeners read the rows, which row-level
  -- security filters. orchestration.notify_details puts id, type and run id in it.
  SELECT count(*) INTO emitted
  FROM (SELECT * FROM inserted ORDER BY id) i,
       LATERAL pg_notify('orchestration_events',
                         CASE WHEN current_setting('orchestration.notify_details', true) = 'on'
                              THEN json_build_object('id', i.id, 'type', i.type, 'run_id', i.run_id)::text
                              ELSE '' END);
  IF emitted > 0 THEN
    PERFORM orchestration.wake_relay();
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.emit_events(integer[], text[], bigint[], text[], jsonb[]) IS
  'Internal: writes CloudEvents 1.0 documents to the outbox (orchestration.events) in array order, one per element (type is the full orchestration.<entity>.<event>), sends NOTIFY orchestration_events (an empty payload; with orchestration.notify_details = on, each event''s id, type and run id), and wakes the NATS relay at commit. Runs in the caller''s transaction: a rollback emits nothing';

CREATE FUNCTION orchestration.emit_event(project_id integer, entity text, event text,
                                         run_id bigint, node_key text, data jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM orchestration.emit_events(ARRAY[project_id], ARRAY['orchestration.' || entity || '.' || event],
                                    ARRAY[run_id], ARRAY[node_key], ARRAY[data]);
END
$$;
COMMENT ON FUNCTION orchestration.emit_event(integer, text, text, bigint, text, jsonb) IS
  'Internal: writes one event to the outbox, see emit_events; entity and event make its type orchestration.<entity>.<event>';

-- What a LISTENer reads after a notification: the events after the last id it saw, those
-- of its projects (row-level security), oldest first. Ids grow with time but may commit
-- out of order, so a listener that must see every event re-reads a few ids back (see the
-- README) or reads the NATS stream.
CREATE FUNCTION orchestration.events_after(after_id bigint, max_rows integer DEFAULT 1000)
RETURNS TABLE (id bigint, project_id integer, type text, subject text, run_id bigint, payload jsonb,
               created_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF after_id IS NULL OR max_rows IS NULL OR max_rows < 0 THEN
    RAISE EXCEPTION 'events_after: after_id must not be NULL and max_rows must be 0 or more'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Start from 0 to read every event kept.';
  END IF;
  RETURN QUERY
    SELECT e.id, e.project_id, e.type, e.subject, e.run_id, e.payload, e.created_at
    FROM orchestration.events e WHERE e.id > after_id ORDER BY e.id LIMIT max_rows;
END
$$;
COMMENT ON FUNCTION orchestration.events_after(bigint, integer) IS
  'The events after an id (oldest first, at most max_rows), of the projects the caller has: what a LISTEN orchestration_events client reads after each notification';
