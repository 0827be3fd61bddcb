-- What the NATS relay worker runs. It publishes the outbox (orchestration.events) and
-- starts workflows whose trigger is {"type": "nats", "subject": "..."}; every statement it
-- needs is here, so the C++ side only moves rows and messages.
--
-- The relay runs them for every batch it publishes, beside the workers on the same cores:
-- they are PL/pgSQL, whose plans are kept for the session. (An SQL function with a SET
-- clause is planned again at every call; one without, like nats_subject_of, is inlined
-- into the statement that calls it.)

-- Inlined into relay_next_events: no SET clause, every name built in, and immutable as
-- declared (the project id is cast to text explicitly).
CREATE FUNCTION orchestration.nats_subject_of(project_id integer, type text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT 'orchestration.' || project_id::text || '.' || substr(type, length('orchestration.') + 1) $$;
COMMENT ON FUNCTION orchestration.nats_subject_of(integer, text) IS
  'The NATS subject of an event: orchestration.<project>.<entity>.<event>, e.g. orchestration.1.run.succeeded';

CREATE FUNCTION orchestration.relay_next_events(batch_size integer)
RETURNS TABLE (id bigint, msg_id text, subject text, payload text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY
    SELECT e.id, e.payload->>'id', orchestration.nats_subject_of(e.project_id, e.type), e.payload::text
    FROM orchestration.events e
    WHERE e.published_at IS NULL
    ORDER BY e.id
    LIMIT batch_size;
END
$$;
COMMENT ON FUNCTION orchestration.relay_next_events(integer) IS
  'Internal (relay): the oldest unpublished events, in id order, with their NATS subject and message id (the CloudEvents id)';

CREATE FUNCTION orchestration.relay_mark_published(event_ids bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE orchestration.events e SET published_at = clock_timestamp()
  WHERE e.id = ANY(event_ids) AND e.published_at IS NULL;
END
$$;
COMMENT ON FUNCTION orchestration.relay_mark_published(bigint[]) IS
  'Internal (relay): marks events published once NATS acknowledged them';

CREATE FUNCTION orchestration.prune_events(retention interval, max_rows integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  pruned bigint;
BEGIN
  DELETE FROM orchestration.events e
  WHERE e.id IN (SELECT o.id FROM orchestration.events o
                 WHERE o.published_at IS NOT NULL AND o.published_at < now() - retention
                 LIMIT max_rows);
  GET DIAGNOSTICS pruned = ROW_COUNT;
  -- Spans are telemetry: those an OTLP endpoint did not take within the retention go.
  DELETE FROM orchestration.span_queue q
  WHERE q.id IN (SELECT o.id FROM orchestration.span_queue o
                 WHERE o.created_at < now() - retention ORDER BY o.id LIMIT max_rows);
  RETURN pruned;
END
$$;
COMMENT ON FUNCTION orchestration.prune_events(interval, integer) IS
  'Deletes up to max_rows events published longer ago than retention and returns how many; unpublished events are never deleted. Also deletes up to max_rows queued spans older than retention (unsent: telemetry is not kept for ever). The relay calls it with orchestration.event_retention';

CREATE FUNCTION orchestration.nats_trigger_subjects() RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY
    SELECT DISTINCT w.trigger->>'subject' FROM orchestration.workflows w
    WHERE w.status = 'ACTIVE' AND w.trigger->>'type' = 'nats'
    ORDER BY 1;
END
$$;
COMMENT ON FUNCTION orchestration.nats_trigger_subjects() IS
  'Internal (relay): the subjects the relay subscribes to, one per distinct trigger subject of an ACTIVE workflow';

CREATE FUNCTION orchestration.start_workflows_from_nats(pattern text, subject text, message text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  context jsonb;
  target orchestration.workflows;
  run_ids bigint[] := '{}';
BEGIN
  BEGIN
    context := message::jsonb;
  EXCEPTION WHEN invalid_text_representation THEN
    RETURN jsonb_build_object('error', format('the message on "%s" is not JSON (%s); no workflow was started', subject, SQLERRM));
  END;
  IF jsonb_typeof(context) IS DISTINCT FROM 'object' THEN
    RETURN jsonb_build_object('error', format('the message on "%s" is JSON %s, not an object; no workflow was started',
                                              subject, coalesce(jsonb_typeof(context), 'null')));
  END IF;
  FOR target IN SELECT * FROM orchestration.workflows w
                WHERE w.status = 'ACTIVE' AND w.trigger->>'type' = 'nats' AND w.trigger->>'subject' = pattern
                ORDER BY w.id LOOP
    -- Whoever last defined the workflow chose to start runs from this subject: the run
    -- is theirs, also as the person four-eyes approvals compare.
    run_ids := run_ids || orchestration.create_run(target, 'nats', context, target.updated_by);
    UPDATE orchestration.workflow_runs r SET started_login = target.updated_by
    WHERE r.id = run_ids[cardinality(run_ids)];
  END LOOP;
  RETURN jsonb_build_object('run_ids', to_jsonb(run_ids));
END
$$;
COMMENT ON FUNCTION orchestration.start_workflows_from_nats(text, text, text) IS
  'Internal (relay): starts every ACTIVE workflow whose NATS trigger subject is pattern, with the message (a JSON object) as context; returns {"run_ids": [...]} or, for a message that is not a JSON object, {"error": "..."} having started nothing';

-- A workflow created, changed or archived may change the relay's subscriptions.
CREATE FUNCTION orchestration.workflows_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM orchestration.wake_relay();
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.workflows_changed() IS
  'Internal: wakes the NATS relay after a change to workflows, so that trigger subscriptions follow without a restart';
CREATE TRIGGER workflows_changed AFTER INSERT OR UPDATE OR DELETE ON orchestration.workflows
  FOR EACH STATEMENT EXECUTE FUNCTION orchestration.workflows_changed();
