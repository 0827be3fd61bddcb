-- The outbox as the relay reads it: NATS subjects, the relay's trigger entry point, pruning.
-- (Publishing itself is tested against a real nats-server: test/integration/events*.sh.)
\set SHOW_CONTEXT never
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 1000000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;

-- Subjects: orchestration.<project>.<entity>.<event>
SELECT orchestration.nats_subject_of(7, 'orchestration.run.succeeded'),
       orchestration.nats_subject_of(12, 'orchestration.approval.requested');

-- NATS triggers: only ACTIVE workflows' subjects, each once.
CREATE FUNCTION public.ev_echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT orchestration.register_agent(91, '{"name": "echo", "type": "RULE", "function": "public.ev_echo", "capabilities": [{"name": "say"}]}') > 0 AS registered;
SELECT orchestration.create_workflow(91, '{"name": "orders-a", "trigger": {"type": "nats", "subject": "shop.orders.*"}, "nodes": [{"id": "n", "agent": "echo", "action": "say"}]}') > 0 AS created;
SELECT orchestration.create_workflow(91, '{"name": "orders-b", "trigger": {"type": "nats", "subject": "shop.orders.*"}, "nodes": [{"id": "n", "agent": "echo", "action": "say"}]}') > 0 AS created;
SELECT orchestration.create_workflow(91, '{"name": "drafted", "status": "DRAFT", "trigger": {"type": "nats", "subject": "shop.drafts"}, "nodes": [{"id": "n", "agent": "echo", "action": "say"}]}') > 0 AS created;
SELECT * FROM orchestration.nats_trigger_subjects() s WHERE s LIKE 'shop.%';

-- A message starts every workflow on its subject, with the message as context; anything
-- but a JSON object starts nothing and says why.
SELECT orchestration.start_workflows_from_nats('shop.orders.*', 'shop.orders.eu', '{"order": 1}');
SELECT w.name, r.trigger, r.context, r.started_by = w.created_by AS started_by_definer
FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
WHERE r.project_id = 91 ORDER BY r.id;
SELECT orchestration.start_workflows_from_nats('shop.orders.*', 'shop.orders.eu', 'not json');
SELECT orchestration.start_workflows_from_nats('shop.orders.*', 'shop.orders.eu', '[1]');
SELECT orchestration.start_workflows_from_nats('shop.orders.*', 'shop.orders.eu', 'null');
SELECT orchestration.start_workflows_from_nats('shop.drafts', 'shop.drafts', '{}');
SELECT count(*) AS runs FROM orchestration.workflow_runs WHERE project_id = 91;

-- Pruning deletes published events older than the retention, and nothing else.
INSERT INTO orchestration.events (project_id, type, subject, payload, created_at, published_at) VALUES
  (91, 'orchestration.test.old', 'test', '{"n": "published 2 hours ago"}', now() - interval '3 hours', now() - interval '2 hours'),
  (91, 'orchestration.test.recent', 'test', '{"n": "published 10 minutes ago"}', now() - interval '3 hours', now() - interval '10 minutes'),
  (91, 'orchestration.test.waiting', 'test', '{"n": "never published, 3 days old"}', now() - interval '3 days', NULL);
SELECT orchestration.prune_events(interval '1 hour') >= 1 AS pruned;
SELECT type FROM orchestration.events WHERE project_id = 91 AND type LIKE 'orchestration.test.%' ORDER BY id;

-- The SQL helpers that build an event are inlined by the planner into the statement that
-- writes it (no function call per event): an SQL function with no SET clause, not STRICT,
-- not SECURITY DEFINER, whose body is no more volatile than it says (event_subject once
-- made 'run/' || run_id the stable textanycat, and was called for every event). The
-- document itself is C (event_document, below).
DO $$
DECLARE
  helper text;
  line text;
  called boolean;
BEGIN
  SET LOCAL search_path = pg_catalog, pg_temp;
  -- Arguments from a column (g): constants would fold a call away at planning either way.
  FOREACH helper IN ARRAY ARRAY[
      'event_subject(g, ''n1'')',
      'event_notification(g, ''orchestration.run.created'', g)',
      'nats_subject_of(g, ''orchestration.run.created'')'] LOOP
    called := false;
    FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) SELECT orchestration.' || helper || ' FROM generate_series(1, 2) g' LOOP
      IF line LIKE '%orchestration.' || split_part(helper, '(', 1) || '(%' THEN
        called := true;
      END IF;
    END LOOP;
    RAISE NOTICE '% inlined: %', split_part(helper, '(', 1), NOT called;
  END LOOP;
END $$;

-- An event's CloudEvents 1.0 document: its data is the run's fields (project, run,
-- traceparent, node key) with the event's own added over them; its time is occurred_at
-- (or now) in UTC with microseconds; its id a new random (version 4) UUID every time.
SELECT doc - 'id' AS document,
       doc->>'id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS id_is_a_uuid
FROM (SELECT orchestration.event_document(7, 'orchestration.node.succeeded', 'run/9/node/a', 9, 'a',
               '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
               '{"status": "SUCCESS", "output": {"deep": [1, {"x": null}]}, "run_id": "its own"}',
               '2026-12-04 07:02:19.458536+01') AS doc) d;
SELECT orchestration.event_document(NULL, NULL, NULL, NULL, NULL, NULL, NULL, '1969-07-20 20:17:40.5-05') - 'id' AS all_null;
SELECT (orchestration.event_document(1, 't', 's', 1, NULL, NULL, NULL)->>'time')::timestamptz
         BETWEEN now() AND clock_timestamp() AS time_is_now,
       orchestration.event_document(1, 't', 's', 1, NULL, NULL, NULL, 'infinity')->'time' AS infinite_time;
SELECT count(DISTINCT orchestration.event_document(1, 't', 's', g, NULL, NULL, NULL)->>'id') AS distinct_ids
FROM generate_series(1, 1000) g;
-- Data that is not an object is refused (|| would have made the document an array).
SELECT orchestration.event_document(1, 't', 's', 1, NULL, NULL, '[1]');
SELECT orchestration.event_document(1, 't', 's', 1, NULL, NULL, '"text"');
