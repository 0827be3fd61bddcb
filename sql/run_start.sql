-- A run starts (RUNNING, started_at, its run.started event) when its first nodes are
-- claimed; a one-node run claimed by a RULE worker (or a run whose nodes a RULE worker
-- claimed with another run's), with the write that moves its node,
-- whatever that write is: its attempt recorded, the node skipped or failed, an approval
-- asked for. Its run.started event comes first of its events after run.created, once, and
-- says when the run started.
\set SHOW_CONTEXT never
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 1300000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE FUNCTION public.start_echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
CREATE FUNCTION public.start_fail(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'no'; END $$;
SELECT count(orchestration.register_agent(97, spec::jsonb)) AS registered FROM (VALUES
  ('{"name": "echo", "type": "RULE", "function": "public.start_echo", "capabilities": [{"name": "say"}]}'),
  ('{"name": "fail", "type": "RULE", "function": "public.start_fail", "capabilities": [{"name": "try"}]}')) s(spec);
SELECT count(orchestration.create_workflow(97, spec::jsonb)) AS created FROM (VALUES
  ('{"name": "one", "nodes": [{"id": "a", "agent": "echo", "action": "say"}]}'),
  ('{"name": "skipped", "nodes": [{"id": "a", "agent": "echo", "action": "say", "when": "1 > 2"}]}'),
  ('{"name": "failing", "nodes": [{"id": "a", "agent": "fail", "action": "try"}]}'),
  ('{"name": "asking", "nodes": [{"id": "a", "agent": "echo", "action": "say", "approval_required": true}]}'),
  ('{"name": "chain", "nodes": [{"id": "a", "agent": "echo", "action": "say"}, {"id": "b", "agent": "echo", "action": "say", "depends_on": ["a"]}]}'),
  ('{"name": "wide", "nodes": ' || (SELECT json_agg(json_build_object('id', 'n' || i, 'agent', 'echo', 'action', 'say'))
                                    FROM generate_series(1, 60) i) || '}')) s(spec);

-- Each kind of first move, and the events of its run in order.
CREATE TEMP TABLE started_runs AS
SELECT w, orchestration.start_workflow(97, w) AS id
FROM unnest(ARRAY['one', 'skipped', 'failing', 'asking', 'chain', 'wide']) w;
SELECT s.w AS workflow, r->>'status' AS status
FROM started_runs s, orchestration.wait_for_run(s.id, '60 seconds') r ORDER BY s.id;
SELECT s.w AS workflow, string_agg(substr(e.type, 15), ', ' ORDER BY e.id) AS events
FROM started_runs s JOIN orchestration.events e ON e.run_id = s.id
WHERE s.w <> 'wide' GROUP BY s.id, s.w ORDER BY s.id;

-- A run of 60 nodes: started once, before any of its nodes' events.
SELECT count(*) FILTER (WHERE e.type = 'orchestration.run.started') AS started_events,
       min(e.id) FILTER (WHERE e.type = 'orchestration.run.started')
         < min(e.id) FILTER (WHERE e.type LIKE 'orchestration.node.%') AS started_first,
       count(*) FILTER (WHERE e.type = 'orchestration.node.succeeded') AS nodes_succeeded
FROM started_runs s JOIN orchestration.events e ON e.run_id = s.id WHERE s.w = 'wide';

-- A one-node run's start is its node's attempt's; so is every run's here: started in one
-- statement, their nodes were claimed together, and a claim of several runs' nodes starts
-- none of them (below). The event's time says the same.
SELECT s.w AS workflow,
       r.started_at IS NOT NULL AND r.started_at <= r.finished_at IS NOT FALSE AS started,
       r.started_at = (SELECT min(a.started_at) FROM orchestration.agent_runs a WHERE a.run_id = r.id) AS at_first_attempt,
       (SELECT e.payload->>'time' FROM orchestration.events e
        WHERE e.run_id = r.id AND e.type = 'orchestration.run.started')
         = to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS event_time
FROM started_runs s JOIN orchestration.workflow_runs r ON r.id = s.id ORDER BY s.id;

-- A claim alone starts nothing: in this transaction (the workers do not see its run), the
-- node is claimed and the run is still PENDING, without a start or a run.started event.
-- Except a run of more than one node (a chain here) whose nodes are all the claim took:
-- the claim starts it before the function runs, so that the step to its next node does
-- not carry the start.
BEGIN;
SELECT orchestration.start_workflow(97, 'chain') AS unseen_chain \gset
SELECT count(*) AS claimed FROM orchestration.claim_nodes(10, 0, 0, '{}', 'rule', '{}', 97, '{}') c
WHERE c.run_id = :unseen_chain;
SELECT w.name AS workflow, r.status, r.started_at IS NULL AS no_start,
       (SELECT count(*) FROM orchestration.events e WHERE e.run_id = r.id AND e.type = 'orchestration.run.started') AS started_events
FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
WHERE r.id = :unseen_chain;
ROLLBACK;

-- A RULE claim that takes nodes of several runs starts none of them, the chain neither:
-- starting a run takes its row, and the worker's first write takes the rows of all the
-- claim's runs in id order (lock_runs), which must not mean waiting for a run below one
-- it holds (the lock order, 70_runs.sql). Each starts with its first node's write.
BEGIN;
SELECT orchestration.start_workflow(97, 'one') AS unseen, orchestration.start_workflow(97, 'chain') AS unseen_chain \gset
SELECT count(*) AS claimed FROM orchestration.claim_nodes(10, 0, 0, '{}', 'rule', '{}', 97, '{}') c
WHERE c.run_id IN (:unseen, :unseen_chain);
SELECT w.name AS workflow, r.status, r.started_at IS NULL AS no_start,
       (SELECT count(*) FROM orchestration.events e WHERE e.run_id = r.id AND e.type = 'orchestration.run.started') AS started_events
FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
WHERE r.id IN (:unseen, :unseen_chain) ORDER BY r.id;
ROLLBACK;

-- A run of several nodes that its claim did not start (another worker's claim was starting
-- it at that moment, SKIP LOCKED, and rolled back) starts with its first node's result:
-- run.started first, started_at the attempt's start, RUNNING with the next node handed on.
BEGIN;
SELECT orchestration.start_workflow(97, 'chain') AS lone_chain \gset
SELECT id AS first_node FROM orchestration.workflow_run_nodes WHERE run_id = :lone_chain AND node_key = 'a' \gset
SELECT node_key AS handed_on FROM orchestration.record_attempts(
  ARRAY[:first_node]::bigint[], ARRAY[true], ARRAY['{}'::jsonb], ARRAY['{}'::jsonb], ARRAY[NULL::text],
  ARRAY['2026-01-01 00:00:00+00'::timestamptz], ARRAY['2026-01-01 00:00:01+00'::timestamptz], 0, hand_off => true);
SELECT status, started_at = '2026-01-01 00:00:00+00' AS at_attempt_start,
       (SELECT string_agg(substr(e.type, 15), ', ' ORDER BY e.id) FROM orchestration.events e WHERE e.run_id = r.id) AS events
FROM orchestration.workflow_runs r WHERE r.id = :lone_chain;
ROLLBACK;

-- start_runs, which every start above goes through, starts only what is still PENDING:
-- given a RUNNING run and two PENDING ones (one with its start, one without: now), it
-- starts the two, in id order, with one run.started each, and leaves the other alone.
BEGIN;
SELECT orchestration.start_workflow(97, 'chain') AS going, orchestration.start_workflow(97, 'chain') AS later,
       orchestration.start_workflow(97, 'chain') AS dated \gset
SELECT orchestration.start_runs(ARRAY[:going]);
SELECT orchestration.start_runs(ARRAY[:dated, :going, :later],
                                ARRAY['2026-01-01 00:00:00+00', '2026-01-02 00:00:00+00', NULL]::timestamptz[]);
SELECT r.id = :going AS first_started, r.status,
       CASE WHEN r.id = :dated THEN r.started_at = '2026-01-01 00:00:00+00'
            ELSE r.started_at > '2026-01-02 00:00:00+00' END AS start_as_given,
       (SELECT count(*) FROM orchestration.events e WHERE e.run_id = r.id AND e.type = 'orchestration.run.started') AS started_events
FROM orchestration.workflow_runs r WHERE r.id IN (:going, :later, :dated) ORDER BY r.id;
SELECT array_agg(e.run_id ORDER BY e.id) = ARRAY[:going, :later, :dated]::bigint[] AS events_in_id_order
FROM orchestration.events e WHERE e.run_id IN (:going, :later, :dated) AND e.type = 'orchestration.run.started';
ROLLBACK;
