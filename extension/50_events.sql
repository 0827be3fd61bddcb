CREATE FUNCTION orchestration.wake_relay() RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_relay';
COMMENT ON FUNCTION orchestration.wake_relay() IS
  'Internal: wakes this database''s NATS relay when the calling transaction commits (nothing happens on rollback)';

-- The transactional outbox. Every run, node and approval state change calls emit_event()
-- in the transaction that makes the change, so an event exists if and only if the change
-- committed. NOTIFY orchestration_events tells LISTENing clients at once; the NATS relay
-- publishes the rows in id order.

-- An event's subject: run/<id> for a run's events, run/<id>/node/<key> for a node's (NATS
-- subjects and CloudEvents say the same thing). A SQL function without settings, which the
-- planner inlines into the statement that calls it: only while its body is as immutable as
-- it is declared (run_id::text; run_id alone would make || the stable textanycat, and the
-- planner would call the function for every event instead).
CREATE FUNCTION orchestration.event_subject(run_id bigint, node_key text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT 'run/' || run_id::text || coalesce('/node/' || node_key, '')
$$;
COMMENT ON FUNCTION orchestration.event_subject(bigint, text) IS
  'Internal: the subject of an outbox event, run/<run id> or run/<run id>/node/<node key>';

-- The CloudEvents 1.0 document of an event, built in one place for every writer (emit_event,
-- emit_events, create_run, record_attempts): in C (src/functions/event_functions.cpp), since every
-- event of every run pays for it; as SQL (jsonb_build_object, ||, format, to_char) it
-- cost about a seventh of a start_workflow call. Its time is now, or occurred_at: a run
-- that starts with its first recorded attempt (a one-node run, start_runs says which) has
-- its run.started say when that attempt began.
CREATE FUNCTION orchestration.event_document(project_id integer, type text, subject text, run_id bigint,
                                             node_key text, traceparent text, data jsonb,
                                             occurred_at timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_event_document';
COMMENT ON FUNCTION orchestration.event_document(integer, text, text, bigint, text, text, jsonb, timestamptz) IS
  'Internal: the CloudEvents 1.0 document of an outbox event (a new id, the source /orchestration/<database>/<project>, type, subject, the time now or occurred_at, and data: project_id, run_id, the run''s traceparent, node_key, and the fields of data, a JSON object or NULL)';

-- What NOTIFY orchestration_events says about an event. Any login role may LISTEN
-- (PostgreSQL cannot restrict it), so by default a notification says only that events were
-- written (identical payloads of one transaction fold into one notification); listeners
-- read the rows, which row-level security filters. orchestration.notify_details puts id,
-- type and run id in it. Inlined, like event_subject.
CREATE FUNCTION orchestration.event_notification(id bigint, type text, run_id bigint)
RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT CASE WHEN current_setting('orchestration.notify_details', true) = 'on'
              THEN json_build_object('id', id, 'type', type, 'run_id', run_id)::text
              ELSE '' END
$$;
COMMENT ON FUNCTION orchestration.event_notification(bigint, text, bigint) IS
  'Internal: the payload of the NOTIFY orchestration_events sent for an event: empty, or with orchestration.notify_details = on its id, type and run id';

-- emit_events writes a batch; emit_event is the one-event case, written out with a statement
-- per row (the batch's statement costs a quarter more for one event: a run's creation is
-- one); record_attempts writes the events of the attempts it records itself (one
-- statement for a claim round).
CREATE FUNCTION orchestration.emit_events(project_ids integer[], types text[], run_ids bigint[],
                                          node_keys text[], data jsonb[], occurred_at timestamptz[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is (its statement takes arrays: planned for their sizes at
-- every call, it cost eight times what it runs for).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  emitted bigint;
BEGIN
  WITH inserted AS (
    INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
    SELECT u.project_id, u.type, u.subject, u.run_id,
           orchestration.event_document(u.project_id, u.type, u.subject, u.run_id, u.node_key, r.traceparent, u.data,
                                        u.occurred_at)
    FROM (SELECT u.*, orchestration.event_subject(u.run_id, u.node_key) AS subject
          FROM unnest(project_ids, types, run_ids, node_keys, data, occurred_at) WITH ORDINALITY
               AS u(project_id, type, run_id, node_key, data, occurred_at, position)) u
    LEFT JOIN orchestration.workflow_runs r ON r.id = u.run_id
    ORDER BY u.position
    RETURNING e.id, e.type, e.run_id
  )
  SELECT count(*) INTO emitted
  FROM (SELECT * FROM inserted ORDER BY id) i,
       LATERAL pg_notify('orchestration_events', orchestration.event_notification(i.id, i.type, i.run_id));
  IF emitted > 0 THEN
    PERFORM orchestration.wake_relay();
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.emit_events(integer[], text[], bigint[], text[], jsonb[], timestamptz[]) IS
  'Internal: writes CloudEvents 1.0 documents to the outbox (orchestration.events) in array order, one per element (type is the full orchestration.<entity>.<event>; the time now, or occurred_at where it is given), sends NOTIFY orchestration_events (an empty payload; with orchestration.notify_details = on, each event''s id, type and run id), and wakes the NATS relay at commit. Runs in the caller''s transaction: a rollback emits nothing';

CREATE FUNCTION orchestration.emit_event(project_id integer, entity text, event text,
                                         run_id bigint, node_key text, data jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  event_type text := 'orchestration.' || entity || '.' || event;
  event_subject text := orchestration.event_subject(run_id, node_key);
  event_id bigint;
BEGIN
  INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
  VALUES (emit_event.project_id, event_type, event_subject, emit_event.run_id,
          orchestration.event_document(emit_event.project_id, event_type, event_subject, emit_event.run_id,
                                       emit_event.node_key,
                                       (SELECT r.traceparent FROM orchestration.workflow_runs r WHERE r.id = emit_event.run_id),
                                       emit_event.data))
  RETURNING e.id INTO event_id;
  PERFORM pg_notify('orchestration_events', orchestration.event_notification(event_id, event_type, emit_event.run_id));
  PERFORM orchestration.wake_relay();
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
