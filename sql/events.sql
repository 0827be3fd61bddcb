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

-- The helpers that build an event are inlined by the planner into the statement that writes
-- it (no function call per event): an SQL function with no SET clause, not STRICT, not
-- SECURITY DEFINER, whose body is no more volatile than it says (event_subject once made
-- 'run/' || run_id the stable textanycat, and was called for every event).
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
      'event_document(g, ''orchestration.run.created'', ''run/7'', g, NULL, NULL, ''{}'')',
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
