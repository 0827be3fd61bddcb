-- Scheduling: what the scheduler and the RULE workers call. Waking them at commit, the
-- node state transitions they drive (each keeps the run's state, its counters and its
-- events consistent, in the worker's own transaction, following the lock order in
-- 70_runs.sql), claiming runnable nodes and recording attempts.

CREATE FUNCTION orchestration.wake_scheduler() RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_scheduler';
COMMENT ON FUNCTION orchestration.wake_scheduler() IS
  'Wakes this database''s scheduler worker and a RULE worker when the current transaction commits (nothing happens on rollback): wake_workers(true, true), for a change that may make nodes of either kind runnable';

-- Who is woken by what: runnable RULE nodes need one RULE worker, runnable container nodes
-- the scheduler. Each process woken for nothing competes, on a small machine, with the one
-- that runs the node and with the caller waiting for it.
CREATE FUNCTION orchestration.wake_workers(rule_nodes boolean, container_nodes boolean,
                                           project_id integer DEFAULT NULL) RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_workers';
COMMENT ON FUNCTION orchestration.wake_workers(boolean, boolean, integer) IS
  'Internal: when the current transaction commits, wakes a sleeping RULE worker of this database if rule_nodes (all of them when none sleeps; the scheduler with orchestration.rule_workers = 0) and the scheduler if container_nodes; nothing on rollback. project_id: the RULE nodes are that project''s alone (every call of the transaction naming the same one), so a worker that serves it need not look again for more';

CREATE FUNCTION orchestration.reserve_run(run_id bigint) RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'orch_reserve_run';
COMMENT ON FUNCTION orchestration.reserve_run(bigint) IS
  'Internal: until this transaction ends, the scheduler claims no node of the run, so a caller about to lock the run''s row (cancel_run, retry_run, approve, reject) gets it promptly instead of racing the scheduler for it';

-- ---------------------------------------------------------------------------------------
-- Node state transitions.

-- The lock order (70_runs.sql) for a worker's write that starts from a node: its run's row
-- first, FOR NO KEY UPDATE (writers take turns; claims go on). Returns the run's status.
CREATE FUNCTION orchestration.lock_run_of(node_id bigint) RETURNS orchestration.run_status
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.status FROM orchestration.workflow_runs r
  WHERE r.id = (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = lock_run_of.node_id)
  FOR NO KEY UPDATE
$$;
COMMENT ON FUNCTION orchestration.lock_run_of(bigint) IS
  'Internal: locks the row of the node''s run for a worker''s write (FOR NO KEY UPDATE; the lock order: a run''s row before its nodes) and returns the run''s status';

-- The lock order across runs (70_runs.sql): a RULE worker's claim round that holds nodes of
-- several runs takes all their rows here, in id order, before its first write; its writes
-- then wait for no run. (Taken as its nodes came, a skip in run B before a result in run A
-- could wait for A while another worker, recording A and then B, waits for B.)
CREATE FUNCTION orchestration.lock_runs(run_ids bigint[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 1 FROM orchestration.workflow_runs r WHERE r.id = ANY (run_ids) ORDER BY r.id FOR NO KEY UPDATE
$$;
COMMENT ON FUNCTION orchestration.lock_runs(bigint[]) IS
  'Internal (RULE workers): locks the rows of these runs for a worker''s writes (FOR NO KEY UPDATE), in id order, waiting for each: the order every writer of several runs takes them in';

-- A failed run's nodes that have not started are skipped ("run failed", which retry_run
-- runs again) and its waiting approvals closed. Nodes another worker holds are passed over
-- (SKIP LOCKED, so that no writer waits for a worker that waits for the run): that worker
-- finds the run failed when it writes them, and a writer that finds a run failed sweeps
-- what is left (record_attempts, lock_live_run_of, note_crash).
CREATE FUNCTION orchestration.skip_unstarted_nodes(run_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  skipped orchestration.workflow_run_nodes;
BEGIN
  -- Their events in level and key order, as every reader sees them.
  FOR skipped IN
    WITH changed AS (
      UPDATE orchestration.workflow_run_nodes n
         SET status = 'SKIPPED', skip_reason = 'run failed', finished_at = clock_timestamp()
       WHERE n.id IN (SELECT m.id FROM orchestration.workflow_run_nodes m
                      WHERE m.run_id = skip_unstarted_nodes.run_id AND m.status IN ('PENDING', 'WAITING_APPROVAL')
                      FOR UPDATE SKIP LOCKED)
         AND n.status IN ('PENDING', 'WAITING_APPROVAL')
      RETURNING *)
    SELECT * FROM changed ORDER BY level, node_key
  LOOP
    PERFORM orchestration.emit_event(skipped.project_id, 'node', 'skipped', skipped.run_id,
              skipped.node_key, jsonb_build_object('status', 'SKIPPED', 'reason', 'run failed'));
  END LOOP;
  UPDATE orchestration.workflow_approvals a
     SET status = 'REJECTED', responded_at = now(), notes = 'run failed before an answer'
   WHERE a.run_id = skip_unstarted_nodes.run_id AND a.status = 'PENDING';
END
$$;
COMMENT ON FUNCTION orchestration.skip_unstarted_nodes(bigint) IS
  'Internal: in a failed run (its row locked), skips the nodes that have not started and no other worker holds, and closes its waiting approvals';

-- A run starts (RUNNING, started_at, its run.started event) when its nodes are first
-- claimed (claim_nodes), except a one-node run claimed by a RULE worker, or any run whose
-- nodes a RULE worker claimed together with another run's (the lock order, 70_runs.sql):
-- it starts with the first write that moves its node, an attempt recorded
-- (record_attempts, which starts it with the attempt's start) or the node skipped, failed
-- or stopped for an approval (these lock the run here). Its nodes are claimed, run and
-- recorded in one transaction, so only their own functions see the run PENDING, and a
-- one-node run's row is written once when it succeeds. The run.started event comes
-- before the node's events. A container's start goes through here too, for a run
-- another claim was starting at the same moment (claim_nodes passes over it).
--
-- Starting is written here, once; each caller picks and locks the runs its own way (a
-- claim passes over runs others hold, a writer waits for them in id order). The runs
-- among run_ids still PENDING become RUNNING, each started at its start_times entry (now
-- when that is NULL or missing), with their run.started events, in id order. The caller
-- holds their rows (FOR NO KEY UPDATE): this waits for no one. (record_attempts' plain
-- path for one node does not come here: it writes the run's row once, with its end.)
CREATE FUNCTION orchestration.start_runs(run_ids bigint[], start_times timestamptz[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is, for the same reasons (see there).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  started_ids bigint[];
  started_projects integer[];
  started_at_of timestamptz[];
BEGIN
  WITH started AS (
    UPDATE orchestration.workflow_runs r
       SET status = 'RUNNING', started_at = coalesce(u.start_time, clock_timestamp())
      FROM unnest(run_ids, start_times) AS u(id, start_time)
     WHERE r.id = u.id AND r.status = 'PENDING'
    RETURNING r.id, r.project_id, r.started_at
  )
  SELECT array_agg(s.id ORDER BY s.id), array_agg(s.project_id ORDER BY s.id), array_agg(s.started_at ORDER BY s.id)
    INTO started_ids, started_projects, started_at_of
  FROM started s;
  IF started_ids IS NOT NULL THEN
    PERFORM orchestration.emit_events(
              started_projects, array_fill('orchestration.run.started'::text, ARRAY[cardinality(started_ids)]),
              started_ids, array_fill(NULL::text, ARRAY[cardinality(started_ids)]),
              array_fill('{"status": "RUNNING"}'::jsonb, ARRAY[cardinality(started_ids)]), started_at_of);
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.start_runs(bigint[], timestamptz[]) IS
  'Internal (claim_nodes, record_attempts, start_run_of): starts the runs that are still PENDING among those given, whose rows the caller has locked: RUNNING, started_at (start_times, in the same order, or now), and a run.started event each, in id order';

-- For a worker's write that moves a node: locks the node's run (lock_run_of) and starts it
-- if it is PENDING (start_runs says which runs start there). Returns the run's status after.
CREATE FUNCTION orchestration.start_run_of(node_id bigint) RETURNS orchestration.run_status
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  run_status orchestration.run_status := orchestration.lock_run_of(node_id);
BEGIN
  IF run_status IS DISTINCT FROM 'PENDING' THEN
    RETURN run_status;
  END IF;
  PERFORM orchestration.start_runs(ARRAY(SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = node_id));
  RETURN 'RUNNING';
END
$$;
COMMENT ON FUNCTION orchestration.start_run_of(bigint) IS
  'Internal: locks the node''s run for a worker''s write (lock_run_of) and, if it is PENDING, starts it (RUNNING, started_at now, a run.started event) before the write moves the node; returns the run''s status after';

-- For a worker about to move a node it holds on (an approval, a container start): locks
-- the node's run (and starts it, when starting: start_run_of) and says whether it is still
-- live. A run that another worker failed while this one held the node is not; its
-- unstarted nodes, this one among them, are skipped here.
CREATE FUNCTION orchestration.lock_live_run_of(node_id bigint, starting boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  run_status orchestration.run_status;
BEGIN
  IF starting THEN
    run_status := orchestration.start_run_of(node_id);
  ELSE
    run_status := orchestration.lock_run_of(node_id);
  END IF;
  IF run_status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL') THEN
    RETURN true;
  END IF;
  PERFORM orchestration.skip_unstarted_nodes(n.run_id)
  FROM orchestration.workflow_run_nodes n WHERE n.id = node_id;
  RETURN false;
END
$$;
COMMENT ON FUNCTION orchestration.lock_live_run_of(bigint, boolean) IS
  'Internal: locks the node''s run for writing (lock_run_of; with starting, start_run_of, which starts a PENDING run) and returns whether it is live; in a run that has ended, skips the unstarted nodes (this one too) first';

-- started_at: the caller started the run in this transaction (its run.started event is
-- written, record_attempts) without writing its row, which is written here once, from
-- PENDING to what its nodes say, with that start.
CREATE FUNCTION orchestration.refresh_run(run_id bigint, started_at timestamptz DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  project integer;
  current_status orchestration.run_status;
  next_status orchestration.run_status;
BEGIN
  -- One statement; each EXISTS is one probe of the live-nodes index, and CASE stops at the
  -- first that decides.
  SELECT r.project_id, r.status, CASE
           WHEN r.status IN ('SUCCESS', 'FAILED', 'CANCELLED') THEN r.status  -- final; a late result never reopens a run
           WHEN NOT EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                            WHERE n.run_id = r.id AND n.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL'))
             THEN CASE WHEN EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                                    WHERE n.run_id = r.id AND n.status = 'FAILED')
                       THEN 'FAILED' ELSE 'SUCCESS' END::orchestration.run_status
           -- "pending_deps <= 0", not "= 0": the same rows (a PENDING node's counter never
           -- goes below 0), but only the live-nodes index can serve it; with "= 0" the
           -- planner may pick the queue index and read every runnable node of every run.
           WHEN EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                        WHERE n.run_id = r.id AND n.status = 'RUNNING')
                OR EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                           WHERE n.run_id = r.id AND n.status = 'PENDING' AND n.pending_deps <= 0)
             THEN 'RUNNING'
           WHEN EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes n
                        WHERE n.run_id = r.id AND n.status = 'WAITING_APPROVAL')
             THEN 'WAITING_APPROVAL'
           ELSE 'RUNNING' END
    INTO project, current_status, next_status
  FROM orchestration.workflow_runs r WHERE r.id = refresh_run.run_id;
  IF next_status = current_status THEN
    RETURN;
  END IF;
  UPDATE orchestration.workflow_runs r SET
    status = next_status,
    started_at = coalesce(r.started_at, refresh_run.started_at, clock_timestamp()),
    finished_at = CASE WHEN next_status IN ('SUCCESS', 'FAILED') THEN clock_timestamp() END
  WHERE r.id = run_id;
  IF current_status = 'PENDING' AND refresh_run.started_at IS NOT NULL AND next_status = 'RUNNING' THEN
    RETURN;  -- its run.started event is written
  END IF;
  PERFORM orchestration.emit_event(project, 'run',
            CASE next_status WHEN 'RUNNING' THEN CASE WHEN current_status = 'PENDING' THEN 'started' ELSE 'resumed' END
                             WHEN 'SUCCESS' THEN 'succeeded' WHEN 'FAILED' THEN 'failed'
                             ELSE 'waiting_approval' END,
            run_id, NULL, jsonb_build_object('status', next_status));
END
$$;
COMMENT ON FUNCTION orchestration.refresh_run(bigint, timestamptz) IS
  'Internal: derives a live run''s status from its nodes (RUNNING while something can progress, WAITING_APPROVAL when only approvals can, SUCCESS or FAILED when every node is final) and emits an event when it changes; started_at: the caller started the PENDING run (wrote its run.started event), and the run started then';

-- A node is final as SKIPPED: its dependents either treat it as satisfied (run_if_skipped)
-- or are skipped too, transitively.
CREATE FUNCTION orchestration.skip_node(node_id bigint, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  queue bigint[] := ARRAY[node_id];
  reasons text[] := ARRAY[reason];
  current_id bigint;
  current_reason text;
  node orchestration.workflow_run_nodes;
  dependent orchestration.workflow_run_nodes;
BEGIN
  -- The run first: its dependents' counters are changed by other writers of the run too.
  PERFORM orchestration.start_run_of(node_id);
  WHILE cardinality(queue) > 0 LOOP
    current_id := queue[1];
    current_reason := reasons[1];
    queue := queue[2:];
    reasons := reasons[2:];
    UPDATE orchestration.workflow_run_nodes n
       SET status = 'SKIPPED', skip_reason = current_reason, finished_at = clock_timestamp()
     WHERE n.id = current_id AND n.status IN ('PENDING', 'RUNNING')
    RETURNING * INTO node;
    CONTINUE WHEN NOT FOUND;
    PERFORM orchestration.emit_event(node.project_id, 'node', 'skipped', node.run_id, node.node_key,
              jsonb_build_object('status', 'SKIPPED', 'reason', current_reason));
    FOR dependent IN
      SELECT * FROM orchestration.workflow_run_nodes d
      WHERE d.run_id = node.run_id AND d.node_key = ANY (node.dependents) AND d.status = 'PENDING'
      ORDER BY d.id FOR UPDATE
    LOOP
      IF dependent.run_if_skipped THEN
        UPDATE orchestration.workflow_run_nodes d SET pending_deps = d.pending_deps - 1
        WHERE d.id = dependent.id;
        IF dependent.pending_deps <= 1 THEN
          PERFORM orchestration.wake_workers(rule, NOT rule)
          FROM (SELECT (SELECT a.type FROM orchestration.agents a WHERE a.id = dependent.agent_id)
                       IS NOT DISTINCT FROM 'RULE' AS rule) k;
        END IF;
      ELSE
        queue := queue || dependent.id;
        reasons := reasons || format('dependency "%s" was skipped', node.node_key);
      END IF;
    END LOOP;
  END LOOP;
  PERFORM orchestration.refresh_run(node.run_id);
END
$$;
COMMENT ON FUNCTION orchestration.skip_node(bigint, text) IS
  'Internal: marks a node SKIPPED with a reason; dependents with run_if_skipped count it as done (one that becomes runnable wakes its worker at commit), the others are skipped too';

-- A node failed for good: the run fails, what has not started is skipped, and waiting
-- approvals are closed (skip_unstarted_nodes). Nodes already running (containers, and RULE
-- nodes another worker holds) finish and are recorded.
CREATE FUNCTION orchestration.fail_node(node_id bigint, error text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  run_status orchestration.run_status;
BEGIN
  PERFORM orchestration.start_run_of(node_id);
  -- Only a node that has not ended: one skipped by an earlier failure of its run (in the
  -- same claim round, say) stays skipped.
  UPDATE orchestration.workflow_run_nodes n
     SET status = 'FAILED', error = fail_node.error, finished_at = clock_timestamp()
   WHERE n.id = node_id AND n.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL')
  RETURNING * INTO node;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  PERFORM orchestration.emit_event(node.project_id, 'node', 'failed', node.run_id, node.node_key,
            jsonb_build_object('status', 'FAILED', 'error', error, 'attempt', node.attempt));
  UPDATE orchestration.workflow_runs r
     SET status = 'FAILED', finished_at = clock_timestamp(),
         error = format('node "%s" failed: %s', node.node_key, fail_node.error)
   WHERE r.id = node.run_id AND r.status NOT IN ('SUCCESS', 'FAILED', 'CANCELLED')
  RETURNING r.status INTO run_status;
  IF run_status IS NULL THEN
    RETURN;  -- the run had already ended (a late result of a cancelled run)
  END IF;
  PERFORM orchestration.skip_unstarted_nodes(node.run_id);
  PERFORM orchestration.emit_event(node.project_id, 'run', 'failed', node.run_id, NULL,
            jsonb_build_object('status', 'FAILED', 'error',
                               format('node "%s" failed: %s', node.node_key, fail_node.error)));
END
$$;
COMMENT ON FUNCTION orchestration.fail_node(bigint, text) IS
  'Internal: fails a node that has not ended (PENDING, RUNNING, WAITING_APPROVAL; else does nothing) for good, fails its run and skips every node of the run that has not started';

-- The outcomes of attempts, in the order given. Each becomes an agent_runs row, and its
-- node moves on: SUCCESS releases its dependents; a failure is retried after exponential
-- backoff while retries remain, else it fails the node and the run. The scheduler records
-- a claim round of RULE nodes in one call (one statement per step, not per node) and a
-- finished container in a call of its own. Arrays left NULL (exit_codes, log_tails,
-- container_ids: RULE attempts have none) count as all NULL.
--
-- This is the scheduler's hot path: a chain of RULE nodes records one node per call, so
-- what a call costs is mostly how many statements it runs and how big their plans are,
-- not the rows. Two statements do the work: the first writes what concerns only the
-- nodes this worker holds (the attempts, their nodes' moves, the events); the second,
-- after the runs' rows are locked for writing, what other writers of the run also
-- change (the dependents' counters). Several workers record nodes of one run at once,
-- taking turns only for the second part and their commits. (One success in a RUNNING
-- run, a chain's step, or in a PENDING one-node run, is written by plain statements under
-- the run's lock from the start: see the first branch below.) A run's status is derived
-- again (refresh_run) only when it may have changed; and the span trigger on agent_runs
-- fires only while tracing is on.
CREATE FUNCTION orchestration.record_attempts(node_ids bigint[], succeeded boolean[], attempt_inputs jsonb[],
                                              outputs jsonb[], errors text[],
                                              started_at timestamptz[], finished_at timestamptz[],
                                              scheduler_round bigint,
                                              exit_codes integer[] DEFAULT NULL,
                                              log_tails text[] DEFAULT NULL,
                                              container_ids text[] DEFAULT NULL,
                                              hand_off boolean DEFAULT false)
RETURNS TABLE (node_id bigint, run_id bigint, project_id integer, node_key text,
               attempt integer, inputs jsonb, condition jsonb, agent_name text, action text,
               agent_type orchestration.agent_type, rule_function text, runs_as name,
               timeout_seconds integer, scope jsonb, needs_approval boolean,
               capability_id bigint, contract_version text, agent jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Its statements take arrays: planned for their sizes each time, they would cost more
-- to plan than to run. So each has one generic plan, made the first time, perhaps while
-- the tables were small and had no statistics: it must not be a scan of a whole table
-- (enable_seqscan), and each statement is written to be driven by its arrays through
-- unique indexes whatever the statistics say. A disabled scan costs 1e10 to the planner,
-- which would also make it compile the plan (jit).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
  emitted bigint;
  refreshed bigint[];
  failed_ids bigint[];
  failed_errors text[];
  failed_runs bigint[];
  dependent_ids bigint[];   -- the dependents of the nodes that succeeded here, each once,
  dependent_counts bigint[];  -- and how many of its dependencies did
  live_runs bigint[];       -- runs of the succeeded nodes that were RUNNING
  wake_rule boolean;
  wake_containers boolean;
  released_rule bigint[];   -- the RULE nodes made runnable here, in dispatch order
  one record;               -- the one successful attempt recorded the plain way
  one_attempt integer;
  one_released boolean;
  starting_runs bigint[];   -- PENDING runs this call starts (start_runs says why here)
BEGIN
  IF cardinality(node_ids) IS DISTINCT FROM cardinality(succeeded)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(attempt_inputs)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(started_at)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(finished_at) THEN
    RAISE EXCEPTION 'record_attempts: the arrays must have one element per node'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- 1. The attempts and their nodes, which this transaction holds (a claim locked them, or
  -- a container's node is RUNNING: nobody claims it): no other writer touches these rows.
  -- One attempt that succeeded, of a node still waiting for it in a live run that is not
  -- waiting for an approval (every step of a chain, most container completions, a
  -- one-node run), is recorded by plain statements: the set-based ones below, made for
  -- claim rounds of many nodes, cost one node about twice as much, most of it the
  -- executor's start-up of their plans. It takes the run's lock first (statement 2 takes
  -- it after statement 1; this transaction keeps it to its end either way). A PENDING run
  -- starts here (start_run_of): its run.started event goes before the node's, and its row
  -- is written once, by refresh_run. A node or run found otherwise goes the general way.
  IF cardinality(node_ids) = 1 AND succeeded[1] THEN
    SELECT n.run_id, n.project_id, n.node_key, n.agent_id, n.dependents, n.status, n.attempt_traceparent,
           r.status AS run_status, r.traceparent AS run_traceparent
      INTO one
    FROM orchestration.workflow_run_nodes n JOIN orchestration.workflow_runs r ON r.id = n.run_id
    WHERE n.id = node_ids[1]
    FOR NO KEY UPDATE OF r;
    IF one.run_status IN ('PENDING', 'RUNNING') AND one.status IN ('PENDING', 'RUNNING') THEN
      UPDATE orchestration.workflow_run_nodes n SET
        attempt = n.attempt + 1, status = 'SUCCESS', output = outputs[1], error = NULL,
        resolved_input = attempt_inputs[1],
        started_at = coalesce(n.started_at, record_attempts.started_at[1]),
        finished_at = record_attempts.finished_at[1], next_attempt_at = NULL
      WHERE n.id = node_ids[1]
      RETURNING n.attempt INTO one_attempt;
      INSERT INTO orchestration.agent_runs
        (project_id, agent_id, agent_name, run_id, run_node_id, node_key, attempt, input_json,
         output_json, status, error, exit_code, log_tail, container_id, scheduler_round,
         started_at, finished_at, duration_ms, traceparent)
      VALUES (one.project_id, one.agent_id,
              coalesce((SELECT ag.name FROM orchestration.agents ag WHERE ag.id = one.agent_id), '(deleted)'),
              one.run_id, node_ids[1], one.node_key, one_attempt, attempt_inputs[1], outputs[1], 'SUCCESS',
              errors[1], exit_codes[1], log_tails[1], container_ids[1], scheduler_round,
              record_attempts.started_at[1], record_attempts.finished_at[1],
              (extract(epoch FROM record_attempts.finished_at[1] - record_attempts.started_at[1]) * 1000)::integer,
              -- As below: the span its container got, or a new one in the run's trace.
              coalesce(CASE WHEN one.status = 'RUNNING' THEN one.attempt_traceparent END,
                       orchestration.child_traceparent(one.run_traceparent)));
      -- A run its claim did not start (one node, or claimed with another run's nodes)
      -- starts here: its run.started first.
      IF one.run_status = 'PENDING' THEN
        PERFORM orchestration.emit_events(ARRAY[one.project_id], ARRAY['orchestration.run.started'], ARRAY[one.run_id],
                                          ARRAY[NULL], ARRAY['{"status": "RUNNING"}'::jsonb],
                                          ARRAY[record_attempts.started_at[1]]);
      END IF;
      WITH inserted AS (
        INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
        VALUES (one.project_id, 'orchestration.node.succeeded', orchestration.event_subject(one.run_id, one.node_key),
                one.run_id,
                orchestration.event_document(one.project_id, 'orchestration.node.succeeded',
                  orchestration.event_subject(one.run_id, one.node_key), one.run_id, one.node_key, one.run_traceparent,
                  jsonb_build_object('status', 'SUCCESS', 'attempt', one_attempt, 'output', outputs[1])))
        RETURNING e.id, e.type, e.run_id
      )
      SELECT count(pg_notify('orchestration_events', orchestration.event_notification(i.id, i.type, i.run_id)))
        INTO emitted
      FROM inserted i;
      PERFORM orchestration.wake_relay();
      -- Its dependents, each looked up by (run_id, node_key) in a subquery of its own, as
      -- statement 1 does below: an index probe each whatever the statistics say (a plan
      -- made on empty tables could otherwise walk every live node of the run). From here
      -- on this is statement 3 and the end below for one node, written out because they
      -- cost a chain step 7% more CPU (their GROUP BY and EXCEPT): a change to what
      -- releasing a node means is a change to both.
      WITH released AS (
        UPDATE orchestration.workflow_run_nodes d SET pending_deps = d.pending_deps - 1
        WHERE d.id = ANY (ARRAY(SELECT (SELECT x.id FROM orchestration.workflow_run_nodes x
                                        WHERE x.run_id = one.run_id AND x.node_key = k)
                                FROM unnest(one.dependents) AS k))
        RETURNING d.id, d.priority, d.level, d.status = 'PENDING' AND d.pending_deps <= 0 AS runnable,
                  (SELECT a.type FROM orchestration.agents a WHERE a.id = d.agent_id) IS NOT DISTINCT FROM 'RULE' AS rule,
                  d.next_attempt_at IS NULL OR d.next_attempt_at <= clock_timestamp() AS due
      )
      SELECT bool_or(l.rule) FILTER (WHERE l.runnable), bool_or(NOT l.rule) FILTER (WHERE l.runnable),
             array_agg(l.id ORDER BY l.priority DESC, l.level, l.id) FILTER (WHERE l.runnable AND l.rule AND l.due),
             coalesce(bool_or(l.runnable), false)
        INTO wake_rule, wake_containers, released_rule, one_released
      FROM released l;
      IF wake_rule OR wake_containers THEN
        PERFORM orchestration.wake_workers(wake_rule, wake_containers);
      END IF;
      -- A run with a node runnable is RUNNING: nothing to derive (a chain's first step
      -- starts it).
      IF NOT one_released THEN
        PERFORM orchestration.refresh_run(one.run_id,
                                          CASE WHEN one.run_status = 'PENDING' THEN record_attempts.started_at[1] END);
      ELSIF one.run_status = 'PENDING' THEN
        UPDATE orchestration.workflow_runs r SET status = 'RUNNING', started_at = record_attempts.started_at[1]
        WHERE r.id = one.run_id;
      END IF;
      -- The hand-off, as at the end below (nothing here can have ended the run).
      IF hand_off AND released_rule IS NOT NULL THEN
        RETURN QUERY SELECT * FROM orchestration.claimed_node_details(released_rule);
      END IF;
      RETURN;
    END IF;
  END IF;

  -- The PENDING runs among these start first (start_runs), when their first attempt began,
  -- their run.started events before their nodes': their rows locked for writing
  -- (statement 2 below takes the others' locks), in id order.
  SELECT array_agg(l.id ORDER BY l.id) INTO starting_runs
  FROM (SELECT r.id FROM orchestration.workflow_runs r
        WHERE r.id IN (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (node_ids))
          AND r.status = 'PENDING'
        ORDER BY r.id FOR NO KEY UPDATE OF r) l;
  IF starting_runs IS NOT NULL THEN
    PERFORM orchestration.start_runs(starting_runs,
              ARRAY(SELECT min(u.started_at)
                    FROM unnest(node_ids, record_attempts.started_at) AS u(id, started_at)
                    JOIN orchestration.workflow_run_nodes n ON n.id = u.id
                    WHERE n.run_id = ANY (starting_runs)
                    GROUP BY n.run_id ORDER BY n.run_id));
  END IF;

  WITH attempt AS (
    SELECT u.*, n.project_id, n.run_id, n.node_key, n.agent_id, n.retries, n.dependents, n.attempt + 1 AS number,
           r.status AS run_status, r.traceparent AS run_traceparent,
           CASE WHEN n.status NOT IN ('PENDING', 'RUNNING') THEN NULL  -- cancelled or skipped meanwhile: only the attempt is kept
                WHEN r.status = 'CANCELLED' THEN 'cancelled'            -- a container stopped by cancel_run
                WHEN u.succeeded THEN 'succeeded'
                -- No retry in a run that another node failed meanwhile (while another
                -- worker held this one): the attempt's failure is final.
                WHEN n.attempt + 1 <= n.retries AND r.status <> 'FAILED' THEN 'retrying'
                ELSE 'failed' END AS outcome,
           -- Exponential backoff: retry_backoff_seconds, then twice that, then four times, ...
           u.finished_at + make_interval(secs => n.retry_backoff_seconds * 2 ^ n.attempt) AS retry_at,
           -- The attempt's span: the one its container got, or a new one in the run's trace.
           coalesce(CASE WHEN n.status = 'RUNNING' THEN n.attempt_traceparent END,
                    orchestration.child_traceparent(r.traceparent)) AS traceparent
    FROM unnest(node_ids, succeeded, attempt_inputs, outputs, errors, started_at, finished_at,
                exit_codes, log_tails, container_ids) WITH ORDINALITY
         AS u(node_id, succeeded, input, output, error, started_at, finished_at, exit_code,
              log_tail, container_id, position)
    JOIN orchestration.workflow_run_nodes n ON n.id = u.node_id
    JOIN orchestration.workflow_runs r ON r.id = n.run_id
  ), kept AS (
    INSERT INTO orchestration.agent_runs
      (project_id, agent_id, agent_name, run_id, run_node_id, node_key, attempt, input_json,
       output_json, status, error, exit_code, log_tail, container_id, scheduler_round,
       started_at, finished_at, duration_ms, traceparent)
    SELECT t.project_id, t.agent_id, coalesce(ag.name, '(deleted)'), t.run_id, t.node_id, t.node_key, t.number, t.input, t.output,
           CASE WHEN t.succeeded THEN 'SUCCESS' ELSE 'FAILED' END::orchestration.run_status,
           t.error, t.exit_code, t.log_tail, t.container_id, scheduler_round, t.started_at,
           t.finished_at, (extract(epoch FROM t.finished_at - t.started_at) * 1000)::integer,
           t.traceparent
    FROM attempt t LEFT JOIN orchestration.agents ag ON ag.id = t.agent_id
    ORDER BY t.position
  ), moved AS (
    -- One update per node: its attempt count and, unless it fails for good (fail_node
    -- below does that), its new state.
    UPDATE orchestration.workflow_run_nodes n SET
      attempt = t.number,
      status = CASE t.outcome WHEN 'cancelled' THEN 'CANCELLED' WHEN 'succeeded' THEN 'SUCCESS'
                              WHEN 'retrying' THEN 'PENDING' ELSE n.status END,
      output = CASE WHEN t.outcome = 'succeeded' THEN t.output ELSE n.output END,
      error = CASE t.outcome WHEN 'cancelled' THEN 'run cancelled' WHEN 'succeeded' THEN NULL
                             WHEN 'retrying' THEN t.error ELSE n.error END,
      resolved_input = CASE WHEN t.outcome IS NULL THEN n.resolved_input ELSE t.input END,
      started_at = CASE WHEN t.outcome IN ('succeeded', 'retrying', 'failed')
                        THEN coalesce(n.started_at, t.started_at) ELSE n.started_at END,
      finished_at = CASE WHEN t.outcome IN ('cancelled', 'succeeded') THEN t.finished_at ELSE n.finished_at END,
      next_attempt_at = CASE t.outcome WHEN 'succeeded' THEN NULL WHEN 'retrying' THEN t.retry_at
                                       ELSE n.next_attempt_at END
    FROM attempt t WHERE n.id = t.node_id
  ), inserted AS (
    -- The node events, as emit_events writes them (a failure for good gets its event
    -- from fail_node).
    INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
    SELECT t.project_id, v.type, v.subject, t.run_id,
           orchestration.event_document(t.project_id, v.type, v.subject, t.run_id, t.node_key, t.run_traceparent,
             CASE t.outcome
               WHEN 'cancelled' THEN jsonb_build_object('status', 'CANCELLED')
               WHEN 'succeeded' THEN jsonb_build_object('status', 'SUCCESS', 'attempt', t.number, 'output', t.output)
               ELSE jsonb_build_object('status', 'PENDING', 'attempt', t.number, 'error', t.error,
                                       'next_attempt_at', t.retry_at) END)
    FROM attempt t,
         LATERAL (SELECT 'orchestration.node.' || t.outcome AS type,
                         orchestration.event_subject(t.run_id, t.node_key) AS subject) v
    WHERE t.outcome <> 'failed'
    ORDER BY t.position
    RETURNING e.id, e.type, e.run_id
  ), notified AS (
    SELECT count(*) AS events
    FROM (SELECT * FROM inserted ORDER BY id) i,
         LATERAL pg_notify('orchestration_events', orchestration.event_notification(i.id, i.type, i.run_id))
  ), dependent AS (
    -- The dependents of the nodes that succeeded, each once with the number of its
    -- dependencies that did (a wide round's join node is looked up once, not once per
    -- node), each looked up by (run_id, node_key) in a subquery of its own, so the plan is
    -- an index probe per dependent whatever the statistics say about the table.
    SELECT (SELECT d.id FROM orchestration.workflow_run_nodes d
            WHERE d.run_id = f.run_id AND d.node_key = f.node_key) AS id, f.finished
    FROM (SELECT t.run_id, k AS node_key, count(*) AS finished
          FROM attempt t, unnest(t.dependents) AS k
          WHERE t.outcome = 'succeeded'
          GROUP BY t.run_id, k) f
  )
  SELECT (SELECT n.events FROM notified n),
         (SELECT array_agg(d.id ORDER BY d.id) FILTER (WHERE d.id IS NOT NULL) FROM dependent d),
         (SELECT array_agg(d.finished ORDER BY d.id) FILTER (WHERE d.id IS NOT NULL) FROM dependent d),
         array_agg(DISTINCT t.run_id) FILTER (WHERE t.outcome = 'succeeded' AND t.run_status = 'RUNNING'),
         array_agg(DISTINCT t.run_id) FILTER (WHERE t.outcome = 'succeeded' AND t.run_status <> 'RUNNING'),
         array_agg(t.node_id ORDER BY t.position) FILTER (WHERE t.outcome = 'failed'),
         array_agg(CASE WHEN t.retries > 0 THEN format('%s (after %s attempts)', t.error, t.number)
                        ELSE t.error END ORDER BY t.position) FILTER (WHERE t.outcome = 'failed')
    INTO emitted, dependent_ids, dependent_counts, live_runs, refreshed, failed_ids, failed_errors
  FROM attempt t;

  -- 2. The lock order (70_runs.sql): the runs' rows, for writing (FOR NO KEY UPDATE), in id
  -- order. Writers of a run take turns from here to their commit, so what follows sees
  -- what the previous writer committed; claims of other workers go on.
  -- A locked row is read as it is now: the runs another worker failed meanwhile.
  SELECT array_agg(l.id) FILTER (WHERE l.status = 'FAILED') INTO failed_runs
  FROM (SELECT r.id, r.status FROM orchestration.workflow_runs r
        WHERE r.id IN (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (node_ids))
        ORDER BY r.id FOR NO KEY UPDATE OF r) l;

  IF dependent_ids IS NOT NULL THEN
    -- Each finished dependency takes one off its dependents' counters (a node succeeding
    -- here is never a dependent of another one recorded here: it ran, so they had ended).
    -- A dependent that is no longer PENDING (skipped when its run failed while this
    -- node ran) has a counter nobody reads (retry_run recounts).
    WITH released AS (
      UPDATE orchestration.workflow_run_nodes d SET pending_deps = d.pending_deps - f.finished
      FROM unnest(dependent_ids, dependent_counts) AS f(id, finished)
      WHERE d.id = f.id
      RETURNING d.id, d.run_id, d.priority, d.level, d.status = 'PENDING' AND d.pending_deps <= 0 AS runnable,
                (SELECT a.type FROM orchestration.agents a WHERE a.id = d.agent_id) IS NOT DISTINCT FROM 'RULE' AS rule,
                d.next_attempt_at IS NULL OR d.next_attempt_at <= clock_timestamp() AS due
    )
    SELECT bool_or(l.rule) FILTER (WHERE l.runnable), bool_or(NOT l.rule) FILTER (WHERE l.runnable),
           array_agg(l.id ORDER BY l.priority DESC, l.level, l.id) FILTER (WHERE l.runnable AND l.rule AND l.due),
           -- A run that was RUNNING and now has a runnable node stays RUNNING: nothing to derive.
           refreshed || ARRAY(SELECT unnest(live_runs) EXCEPT SELECT l.run_id FROM released l WHERE l.runnable)
      INTO wake_rule, wake_containers, released_rule, refreshed
    FROM released l;
  ELSE
    refreshed := refreshed || live_runs;
  END IF;

  IF emitted > 0 THEN
    PERFORM orchestration.wake_relay();
  END IF;
  -- Released nodes wake the worker that runs them (a RULE worker recording its own
  -- results wakes no other: it looks again itself).
  IF wake_rule OR wake_containers THEN
    PERFORM orchestration.wake_workers(wake_rule, wake_containers);
  END IF;
  FOR i IN 1 .. coalesce(cardinality(refreshed), 0) LOOP
    PERFORM orchestration.refresh_run(refreshed[i]);
  END LOOP;
  FOR i IN 1 .. coalesce(cardinality(failed_ids), 0) LOOP
    PERFORM orchestration.fail_node(failed_ids[i], failed_errors[i]);
  END LOOP;
  -- A run another worker failed while these nodes were held: what the failure passed over
  -- and nobody holds now is skipped, and so is a node of this call retried on the strength
  -- of the older look at the run in statement 1 (a worker that held nodes of it and died
  -- left them too).
  FOR i IN 1 .. coalesce(cardinality(failed_runs), 0) LOOP
    PERFORM orchestration.skip_unstarted_nodes(failed_runs[i]);
  END LOOP;
  -- A chain's next step without the queue (hand_off, a RULE worker's): its claim took
  -- every runnable RULE node of its project it could lock (a full claim ends its pass), so
  -- the RULE nodes released here, which nobody else sees before this transaction commits,
  -- are what it goes on with. It holds them already: it wrote their rows (the counters
  -- above, which read them as they are now) and holds their runs' rows (the lock above:
  -- a cancel waits for this transaction; a run found failed there is in failed_runs).
  IF hand_off AND released_rule IS NOT NULL THEN
    -- A node failed here, or another worker failed a run: the sweeps above may have
    -- skipped some of them. Only those still runnable go on, each node and its run looked
    -- up by key (subqueries of their own: a generic plan that joined them could scan every
    -- live run or every runnable node instead).
    IF failed_ids IS NOT NULL OR failed_runs IS NOT NULL THEN
      released_rule := ARRAY(
        SELECT u.id FROM unnest(released_rule) AS u(id)
        WHERE (SELECT n.status = 'PENDING'
                      AND (SELECT r.status FROM orchestration.workflow_runs r WHERE r.id = n.run_id)
                            IN ('RUNNING', 'WAITING_APPROVAL')
               FROM orchestration.workflow_run_nodes n WHERE n.id = u.id));
    END IF;
    RETURN QUERY SELECT * FROM orchestration.claimed_node_details(released_rule);
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.record_attempts(bigint[], boolean[], jsonb[], jsonb[], text[], timestamptz[], timestamptz[], bigint, integer[], text[], text[], boolean) IS
  'Internal (scheduler): records attempts of nodes (one agent_runs row each, in array order) and moves each node on: SUCCESS releases its dependents; a failure is retried after exponential backoff while retries remain, else fails the node and the run; a node cancelled or skipped meanwhile keeps only the attempt. With hand_off, returns the RULE nodes its successes made runnable (which this transaction holds), as claim_nodes returns the nodes it claims: a chain''s next step without a look at the queue';

-- What claimed_node_details computes only for the nodes that need it, as calls, not
-- subqueries: a subquery's plan is set up at every execution of the statement it is in,
-- whether any row needs it or not (about an eighth of a one-node claim); a call costs
-- nothing where it is not made. PL/pgSQL, so that a call is not inlined back into a
-- subquery and its plan is kept for the session.

-- The scope a node's templates read: the run's context, the run, the workflow and the
-- outputs of the upstream nodes its templates name (refs), each looked up by
-- (run_id, node_key).
CREATE FUNCTION orchestration.template_scope(run orchestration.workflow_runs, workflow_name text, refs text[])
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN jsonb_build_object(
    'context', run.context,
    'run', jsonb_build_object('id', run.id, 'project_id', run.project_id, 'trigger', run.trigger,
                              'started_by', run.started_by, 'traceparent', run.traceparent),
    'workflow', jsonb_build_object('id', run.workflow_id, 'name', workflow_name, 'version', run.workflow_version),
    'nodes', coalesce((SELECT jsonb_object_agg(ref, upstream) FILTER (WHERE upstream IS NOT NULL)
                       FROM (SELECT ref, (SELECT jsonb_build_object('output', u.output)
                                          FROM orchestration.workflow_run_nodes u
                                          WHERE u.run_id = run.id AND u.node_key = ref
                                            AND u.status = 'SUCCESS') AS upstream
                             FROM unnest(refs) AS ref) r), '{}'));
END
$$;
COMMENT ON FUNCTION orchestration.template_scope(orchestration.workflow_runs, text, text[]) IS
  'Internal (claimed_node_details): the scope a node''s templates read: context, run, workflow, and nodes (the outputs of the SUCCESS upstream nodes of refs, by key)';

-- Whether a node has an approval that counts: one given for the agent and function as
-- they are now (update_agent or CREATE OR REPLACE FUNCTION since asks again).
CREATE FUNCTION orchestration.approval_given(run_id bigint, node_id bigint, agent_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- A lookup per node by its run (indexed), never a hash of every approval.
  RETURN EXISTS (SELECT 1 FROM orchestration.workflow_approvals ap
                 WHERE ap.run_id = approval_given.run_id AND ap.run_node_id = approval_given.node_id
                   AND ap.status = 'APPROVED' AND ap.agent_pin = orchestration.agent_pin(approval_given.agent_id));
END
$$;
COMMENT ON FUNCTION orchestration.approval_given(bigint, bigint, bigint) IS
  'Internal (claimed_node_details): whether a node has an APPROVED approval given for its agent and function as they are now (agent_pin)';

-- What the scheduler needs to move claimed nodes on (claim_nodes, record_attempts): each
-- node with its agent, its template scope, whether it still needs an approval, and its
-- capability's id and row version, in dispatch order.
CREATE FUNCTION orchestration.claimed_node_details(node_ids bigint[])
RETURNS TABLE (node_id bigint, run_id bigint, project_id integer, node_key text,
               attempt integer, inputs jsonb, condition jsonb, agent_name text, action text,
               agent_type orchestration.agent_type, rule_function text, runs_as name,
               timeout_seconds integer, scope jsonb, needs_approval boolean,
               capability_id bigint, contract_version text, agent jsonb)
-- SQL with no settings of its own, so that the planner inlines it into its callers'
-- statements (a chain step saves a function call and a copy of its rows): it is planned
-- with their settings, and its names, all qualified or built in, are resolved with their
-- search_path (pg_catalog, pg_temp). Nobody else may call it.
LANGUAGE sql STABLE
AS $$
    SELECT claimed.id, claimed.run_id, claimed.project_id, claimed.node_key, claimed.attempt,
           claimed.inputs, claimed.condition, a.name, claimed.action, a.type, a.rule_function,
           a.runs_as,
           coalesce(claimed.timeout_seconds, a.timeout_seconds),
           -- The scope its templates read; none for a node whose inputs and condition use
           -- none (placeholders are "{{ ... }}"; this text search may see one that is not).
           CASE WHEN claimed.condition IS NOT NULL OR strpos(claimed.inputs::text, '{{') > 0
                THEN orchestration.template_scope(r, w.name, claimed.refs) END,
           -- An approval counts only for the agent and function it was given for: one
           -- changed since (update_agent, CREATE OR REPLACE FUNCTION) is asked about again.
           CASE WHEN claimed.approval_required OR a.risk_level = 'APPROVAL_REQUIRED'
                THEN NOT orchestration.approval_given(claimed.run_id, claimed.id, a.id)
                ELSE false END,
           -- The row version identifies the schemas, so the scheduler compiles them
           -- once and again only after update_agent changes them.
           c.id, c.xmin::text,
           -- What a container needs (image, command, limits, secrets); a RULE node needs none.
           CASE WHEN a.type <> 'RULE' THEN orchestration.agent_json(a) END
    FROM orchestration.workflow_run_nodes claimed
    -- A node whose agent was deleted, or lost the capability, since its run started is
    -- returned all the same (agent_name or capability_id NULL), to be failed saying so.
    LEFT JOIN orchestration.agents a ON a.id = claimed.agent_id
    JOIN orchestration.workflow_runs r ON r.id = claimed.run_id
    JOIN orchestration.workflows w ON w.id = r.workflow_id
    LEFT JOIN orchestration.agent_capabilities c ON c.agent_id = a.id AND c.name = claimed.action
    WHERE claimed.id = ANY (node_ids)
    ORDER BY claimed.priority DESC, claimed.level, claimed.id
$$;
COMMENT ON FUNCTION orchestration.claimed_node_details(bigint[]) IS
  'Internal (claim_nodes, record_attempts): each claimed node with its agent, its template scope (NULL for a node that uses no placeholders), whether it still needs an approval, and its capability''s id and row version (for the contract cache), in dispatch order. A node whose agent was deleted or lost the capability has agent_name or capability_id NULL';

-- Locks up to max_nodes runnable nodes, in dispatch order (level, then id), and returns
-- what the scheduler needs to move each one on: its agent, its template scope, and whether
-- it still needs an approval (the scheduler checks the node's condition first: a node
-- that is skipped never asks anyone). Only containers stay RUNNING between transactions,
-- so only they count against the concurrency limits.
CREATE FUNCTION orchestration.claim_nodes(max_nodes integer, max_running integer,
                                          max_running_per_project integer,
                                          reserved_runs bigint[], node_kind text,
                                          excluded_projects integer[], only_project integer,
                                          finished_nodes bigint[])
RETURNS TABLE (node_id bigint, run_id bigint, project_id integer, node_key text,
               attempt integer, inputs jsonb, condition jsonb, agent_name text, action text,
               agent_type orchestration.agent_type, rule_function text, runs_as name,
               timeout_seconds integer, scope jsonb, needs_approval boolean,
               capability_id bigint, contract_version text, agent jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is, for the same reasons (see there).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  running_total integer;
  claimed_ids bigint[];
  starting_runs bigint[];   -- the runs of the claimed nodes this claim starts, if PENDING
  lock_project integer := only_project;
BEGIN
  IF node_kind IS NULL OR node_kind NOT IN ('any', 'container', 'rule') THEN
    RAISE EXCEPTION 'claim_nodes: node_kind must be any, container or rule, not %', node_kind
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Every scan below reads the queue index in dispatch order and passes over, in the scan
  -- itself, the rows nobody can lock now (SKIP LOCKED: a node another worker holds, a run
  -- an API call holds), the runs others are about to lock (reserved_runs) and the projects
  -- left out: however many such nodes there are, they cannot hide the ones behind them.
  -- The run row is locked too, and before the node (the lock order in 70_runs.sql): FOR
  -- KEY SHARE, which other claims share, so several workers run nodes of one run at once,
  -- while the API's FOR UPDATE (cancel_run, retry_run, approve, reject) waits for them all
  -- and makes the scan pass over the run. A scan that passes over a run someone holds
  -- takes none of its nodes on the way (locked in the other order, every node of a held
  -- run the scan looked at stayed locked until its transaction ended, out of reach of the
  -- transaction holding the run).
  -- An agent's type is read by its key (a subquery, not a join the generic plan could
  -- turn into a scan of agents per node).
  IF node_kind = 'rule' THEN
    -- A RULE worker claims one project's nodes per transaction (the first project with a
    -- node it can lock): a function that hangs holds back no other project's nodes. RULE
    -- nodes never stay RUNNING, so no limit counts them.
    IF lock_project IS NULL THEN
      SELECT n.project_id INTO lock_project
      FROM orchestration.workflow_run_nodes n
      JOIN orchestration.workflow_runs r ON r.id = n.run_id
      WHERE n.status = 'PENDING' AND n.pending_deps = 0
        AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= clock_timestamp())
        AND (SELECT a.type FROM orchestration.agents a WHERE a.id = n.agent_id) = 'RULE' AND NOT n.project_id = ANY (excluded_projects)
        AND r.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL') AND NOT r.id = ANY (reserved_runs)
      ORDER BY n.priority DESC, n.level, n.id
      LIMIT 1
      FOR KEY SHARE OF r SKIP LOCKED FOR UPDATE OF n SKIP LOCKED;
      IF lock_project IS NULL THEN
        RETURN;
      END IF;
    END IF;
    -- A PENDING run of more than one node starts below; a one-node run is left to its
    -- first write (an index probe by (run_id, node_key) tells them apart). So are the
    -- runs of a claim that holds nodes of several runs: starting one takes its row at
    -- once, and the worker's first write then takes the others' in id order (lock_runs),
    -- which could mean waiting for a run below one it holds (the lock order, 70_runs.sql).
    SELECT array_agg(l.id ORDER BY l.priority DESC, l.level, l.id),
           CASE WHEN count(DISTINCT l.run_id) = 1 THEN
             array_agg(DISTINCT l.run_id) FILTER (
               WHERE l.run_status = 'PENDING'
                 AND EXISTS (SELECT 1 FROM orchestration.workflow_run_nodes m
                             WHERE m.run_id = l.run_id AND m.node_key <> l.node_key)) END
      INTO claimed_ids, starting_runs
    FROM (SELECT n.id, n.level, n.priority, n.run_id, n.node_key, r.status AS run_status
          FROM orchestration.workflow_run_nodes n
          JOIN orchestration.workflow_runs r ON r.id = n.run_id
          WHERE n.status = 'PENDING' AND n.pending_deps = 0
            AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= clock_timestamp())
            AND (SELECT a.type FROM orchestration.agents a WHERE a.id = n.agent_id) = 'RULE' AND n.project_id = lock_project
            AND r.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL') AND NOT r.id = ANY (reserved_runs)
          ORDER BY n.priority DESC, n.level, n.id
          LIMIT max_nodes
          FOR KEY SHARE OF r SKIP LOCKED FOR UPDATE OF n SKIP LOCKED) l;
  ELSE
    -- The scheduler's claim takes the run's row for writing at once (FOR NO KEY UPDATE,
    -- passing over runs a RULE worker is writing): what its pass writes then never waits
    -- for a RULE worker, which may hold a run's row while a tenant's function runs.
    -- Containers count against the limits while they run; one that has finished and
    -- waits for its result to be recorded (its run is locked by someone) does not.
    SELECT count(*) INTO running_total FROM orchestration.workflow_run_nodes n
    WHERE n.status = 'RUNNING' AND NOT n.id = ANY (finished_nodes);
    -- The first lockable runnable nodes, then those the limits leave room for: every RULE
    -- node, and the containers while fewer than max_running_per_project run in their
    -- project and, of those, fewer than max_running in all. The others locked stay
    -- PENDING (and locked until this transaction ends).
    WITH locked AS MATERIALIZED (
      SELECT n.id, n.project_id, n.level, n.priority,
             (SELECT a.type FROM orchestration.agents a WHERE a.id = n.agent_id) IS DISTINCT FROM 'RULE' AS container
      FROM orchestration.workflow_run_nodes n
      JOIN orchestration.workflow_runs r ON r.id = n.run_id
      WHERE n.status = 'PENDING' AND n.pending_deps = 0
        AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= clock_timestamp())
        AND (node_kind = 'any' OR (SELECT a.type FROM orchestration.agents a WHERE a.id = n.agent_id) IS DISTINCT FROM 'RULE')
        AND NOT n.project_id = ANY (excluded_projects)
        AND (only_project IS NULL OR n.project_id = only_project)
        AND r.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL') AND NOT r.id = ANY (reserved_runs)
      ORDER BY n.priority DESC, n.level, n.id
      LIMIT max_nodes * 4
      FOR NO KEY UPDATE OF r SKIP LOCKED FOR UPDATE OF n SKIP LOCKED
    ), busy AS (
      SELECT n.project_id, count(*) AS running
      FROM orchestration.workflow_run_nodes n
      WHERE n.status = 'RUNNING' AND NOT n.id = ANY (finished_nodes)
      GROUP BY n.project_id
    ), in_project AS (
      SELECT l.*, count(*) FILTER (WHERE l.container)
                    OVER (PARTITION BY l.project_id ORDER BY l.priority DESC, l.level, l.id) AS rank_in_project
      FROM locked l
    ), allowed_in_project AS (
      SELECT p.* FROM in_project p LEFT JOIN busy b ON b.project_id = p.project_id
      WHERE NOT p.container OR max_running_per_project <= 0
         OR p.rank_in_project + coalesce(b.running, 0) <= max_running_per_project
    ), ranked AS (
      SELECT p.*, count(*) FILTER (WHERE p.container) OVER (ORDER BY p.priority DESC, p.level, p.id) AS rank
      FROM allowed_in_project p
    )
    SELECT array_agg(x.id ORDER BY x.priority DESC, x.level, x.id) INTO claimed_ids
    FROM (SELECT k.id, k.level, k.priority FROM ranked k
          WHERE NOT k.container OR max_running <= 0 OR k.rank <= max_running - running_total
          ORDER BY k.priority DESC, k.level, k.id LIMIT max_nodes) x;
    starting_runs := ARRAY(SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (claimed_ids));
  END IF;
  IF claimed_ids IS NULL THEN
    RETURN;
  END IF;

  -- The claim starts the PENDING runs of its nodes (before a RULE node's function runs:
  -- the step from a chain's first node to the next does not carry the start), except a
  -- RULE worker's one-node runs, which start with the write that records their node, or
  -- skips, fails it or asks for its approval (start_run_of): a one-node run's row is
  -- written once, PENDING to its end, after its function. (So do the runs of a RULE claim
  -- of several runs, above.) Another worker starting a run at the same moment is not
  -- waited for (SKIP LOCKED): one of them does it, or the first write.
  IF cardinality(starting_runs) > 0 THEN
    PERFORM orchestration.start_runs(ARRAY(SELECT p.id FROM orchestration.workflow_runs p
                                           WHERE p.id = ANY (starting_runs) AND p.status = 'PENDING'
                                           ORDER BY p.id
                                           FOR NO KEY UPDATE OF p SKIP LOCKED));
  END IF;

  RETURN QUERY SELECT * FROM orchestration.claimed_node_details(claimed_ids);
END
$$;
COMMENT ON FUNCTION orchestration.claim_nodes(integer, integer, integer, bigint[], text, integer[], integer, bigint[]) IS
  'Internal (scheduler, RULE workers): locks runnable nodes of a kind (any, container, rule) in priority and level order, passing over rows others hold (SKIP LOCKED; the run FOR KEY SHARE, so several workers claim nodes of one run), runs that others are about to lock (reserve_run) or whose stopped attempt is not recorded yet, and the excluded projects; containers within the concurrency limits (finished_nodes: RUNNING containers that have finished, not counted); RULE nodes of one project at a time (only_project, or the first it can lock). Returns each node with its agent, its template scope, whether it still needs an approval, and its capability''s id and row version (for the contract cache)';

-- What an approval lets run: the agent as defined (its row, capabilities and schemas, as
-- agent_json shows them, which includes updated_at) and, for a RULE agent, its function's
-- definition (oid, owner, language, body, settings, SECURITY DEFINER). What that function
-- calls is not pinned.
CREATE FUNCTION orchestration.agent_pin(agent_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT md5(orchestration.agent_json(a)::text || coalesce(
           (SELECT ROW(p.oid, p.proowner, p.prolang, p.prosecdef, p.proconfig, p.prosrc, p.probin)::text
            FROM pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure(a.rule_function)), ''))
  FROM orchestration.agents a WHERE a.id = agent_id
$$;
COMMENT ON FUNCTION orchestration.agent_pin(bigint) IS
  'Internal: a digest of what an approval lets run, the agent''s definition and, for a RULE agent, its function''s; an approved node runs only while it is unchanged, else it is asked about again';

CREATE FUNCTION orchestration.request_approval(node_id bigint, approval_timeout_seconds integer,
                                               input jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  requested timestamptz := clock_timestamp();
  approval_id bigint;
  previous_id bigint;
BEGIN
  IF NOT orchestration.lock_live_run_of(node_id, true) THEN
    RETURN;  -- another worker failed the run meanwhile
  END IF;
  -- Only a node still PENDING: an earlier node of the same claim round may have ended its
  -- run (and skipped this one) meanwhile.
  UPDATE orchestration.workflow_run_nodes n SET status = 'WAITING_APPROVAL', resolved_input = input
  WHERE n.id = node_id AND n.status = 'PENDING' RETURNING * INTO node;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  -- An earlier approval of this node that no longer counts: the agent changed since.
  SELECT ap.id INTO previous_id FROM orchestration.workflow_approvals ap
  WHERE ap.run_node_id = node_id AND ap.status = 'APPROVED' ORDER BY ap.id DESC LIMIT 1;
  INSERT INTO orchestration.workflow_approvals AS ap
    (project_id, run_id, run_node_id, node_key, requested_at, expires_at, agent_pin)
  VALUES (node.project_id, node.run_id, node.id, node.node_key, requested,
          CASE WHEN approval_timeout_seconds > 0
               THEN requested + make_interval(secs => approval_timeout_seconds) END,
          orchestration.agent_pin(node.agent_id))
  RETURNING ap.id INTO approval_id;
  PERFORM orchestration.emit_event(node.project_id, 'approval', 'requested', node.run_id,
            node.node_key, jsonb_build_object('approval_id', approval_id, 'status', 'PENDING')
              || CASE WHEN previous_id IS NOT NULL THEN jsonb_build_object(
                   'previous_approval_id', previous_id,
                   'reason', 'the agent or its function changed after approval ' || previous_id) ELSE '{}' END);
  PERFORM orchestration.refresh_run(node.run_id);
END
$$;
COMMENT ON FUNCTION orchestration.request_approval(bigint, integer, jsonb) IS
  'Internal (scheduler): puts a claimed node still PENDING in WAITING_APPROVAL, with the input it will run with, and a PENDING approval that expires after approval_timeout_seconds (0: never) and pins the agent as it is now (agent_pin); the event says when an earlier approval no longer counts because the agent changed';

CREATE FUNCTION orchestration.start_container_node(node_id bigint, input jsonb, container_name text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  span text;  -- the attempt's traceparent
BEGIN
  IF NOT orchestration.lock_live_run_of(node_id, true) THEN
    RETURN NULL;  -- another worker failed the run meanwhile: nothing starts
  END IF;
  span := orchestration.child_traceparent(
    (SELECT r.traceparent FROM orchestration.workflow_runs r
     WHERE r.id = (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = node_id)));
  UPDATE orchestration.workflow_run_nodes n SET
    status = 'RUNNING', resolved_input = input, container_name = start_container_node.container_name,
    attempt_traceparent = span,
    started_at = coalesce(n.started_at, clock_timestamp()), next_attempt_at = NULL
  WHERE n.id = node_id AND n.status = 'PENDING' RETURNING * INTO node;
  IF NOT FOUND THEN
    RETURN NULL;  -- an earlier node of the same claim round ended its run: nothing starts
  END IF;
  PERFORM orchestration.emit_event(node.project_id, 'node', 'started', node.run_id, node.node_key,
            jsonb_build_object('status', 'RUNNING', 'attempt', node.attempt + 1, 'container', container_name,
                               'traceparent', span));
  RETURN span;
END
$$;
COMMENT ON FUNCTION orchestration.start_container_node(bigint, jsonb, text) IS
  'Internal (scheduler): a container node is RUNNING, under the container name its attempt will have; returns the attempt''s traceparent (a child span of the run''s trace, also in the node.started event), or NULL, starting nothing, when the node is no longer PENDING (an earlier node of its claim round ended the run). Committed before the container is created, so that after a crash the node says which container to look for';

CREATE FUNCTION orchestration.requeue_node(node_id bigint, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
BEGIN
  PERFORM orchestration.lock_run_of(node_id);
  UPDATE orchestration.workflow_run_nodes n SET status = 'PENDING', container_name = NULL, attempt_traceparent = NULL,
    next_attempt_at = NULL
  WHERE n.id = node_id AND n.status = 'RUNNING' RETURNING * INTO node;
  IF FOUND THEN
    PERFORM orchestration.emit_event(node.project_id, 'node', 'retrying', node.run_id, node.node_key,
              jsonb_build_object('status', 'PENDING', 'attempt', node.attempt + 1, 'reason', reason));
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.requeue_node(bigint, text) IS
  'Internal (scheduler): a RUNNING container node whose container was never created or started (the scheduler stopped in between) is PENDING again; nothing ran, so no retry is used up';

-- The crash-loop breaker (see src/scheduler/crash_marker.hpp): a worker died while
-- working on this node. Counted; at the second crash the node is failed instead of being
-- run again, so one poisonous node cannot keep restarting the server.
CREATE FUNCTION orchestration.note_crash(node_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  run_status orchestration.run_status := orchestration.lock_run_of(node_id);
BEGIN
  IF run_status IS NULL THEN
    RETURN;  -- the node is gone (its run was deleted)
  END IF;
  IF run_status = 'FAILED' THEN
    -- Failed by another worker while the dead process held this node (and perhaps others
    -- of the run): what it held and did not start is skipped, as the failure would have.
    PERFORM orchestration.skip_unstarted_nodes(n.run_id) FROM orchestration.workflow_run_nodes n WHERE n.id = node_id;
    RETURN;
  END IF;
  UPDATE orchestration.workflow_run_nodes n SET crashes = n.crashes + 1
   WHERE n.id = node_id AND n.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL')
  RETURNING * INTO node;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF node.crashes >= 2 THEN
    PERFORM orchestration.fail_node(node_id, format(
      'the worker process running this node died %s times while working on it (attempt %s); it is failed so that it cannot bring the worker down again. The server log has the cause',
      node.crashes, node.attempt + 1));
  ELSE
    RAISE LOG 'pg_orchestration: the previous process of this worker died while working on node % (run %, node "%"); it will be tried once more',
              node.id, node.run_id, node.node_key;
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.note_crash(bigint) IS
  'Internal (scheduler and RULE workers, at start): counts a crash of the worker''s previous process while it worked on a node; a node that brought its worker down twice is failed with a message that says so';

-- The next moment something becomes due without a wake-up: a retry's backoff ends or an
-- approval expires. The scheduler sleeps until then at most.
CREATE FUNCTION orchestration.next_due_at() RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- PL/pgSQL, not SQL, so that the plan is kept: the scheduler asks after every pass.
  RETURN least((SELECT min(n.next_attempt_at) FROM orchestration.workflow_run_nodes n
                WHERE n.status = 'PENDING' AND n.pending_deps = 0),
               (SELECT min(a.expires_at) FROM orchestration.workflow_approvals a
                WHERE a.status = 'PENDING'));
END
$$;
COMMENT ON FUNCTION orchestration.next_due_at() IS
  'Internal (scheduler): when the earliest retry backoff ends or pending approval expires';


-- ---------------------------------------------------------------------------------------
-- The scheduler's reads. The C++ keeps no SQL against tables: it calls these, and reads
-- their rows by column name, one decoder per function (src/scheduler/dispatch.cpp;
-- sql/row_shapes.sql pins the names).

-- Of these nodes, those whose results can be written now without waiting for anyone: their
-- run's row is locked here for writing (the lock order in 70_runs.sql) and their agent's row can
-- be key-share locked (inserting the attempt checks its foreign key; update_agent holds the
-- row while it runs, maybe inside a tenant's open transaction or RULE function). The others
-- wait for a later pass; the scheduler never waits on a tenant's lock.
CREATE FUNCTION orchestration.writable_nodes(node_ids bigint[]) RETURNS TABLE (node_id bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.id FROM orchestration.workflow_run_nodes n
  WHERE n.id = ANY (node_ids)
    AND n.run_id = ANY (ARRAY(SELECT r.id FROM orchestration.workflow_runs r WHERE r.id IN
          (SELECT m.run_id FROM orchestration.workflow_run_nodes m WHERE m.id = ANY (node_ids))
        FOR NO KEY UPDATE OF r SKIP LOCKED))
    AND (NOT EXISTS (SELECT 1 FROM orchestration.agents a WHERE a.id = n.agent_id)
         OR n.agent_id = ANY (ARRAY(SELECT a.id FROM orchestration.agents a WHERE a.id IN
              (SELECT m.agent_id FROM orchestration.workflow_run_nodes m WHERE m.id = ANY (node_ids))
            FOR KEY SHARE OF a SKIP LOCKED)))
$$;
COMMENT ON FUNCTION orchestration.writable_nodes(bigint[]) IS
  'Internal (scheduler): of these nodes, those whose results can be recorded now, locking their runs (FOR NO KEY UPDATE) and agents (FOR KEY SHARE) and passing over those others hold';

CREATE FUNCTION orchestration.cancelled_nodes(node_ids bigint[]) RETURNS TABLE (node_id bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.id FROM orchestration.workflow_run_nodes n JOIN orchestration.workflow_runs r ON r.id = n.run_id
  WHERE n.id = ANY (node_ids) AND r.status = 'CANCELLED'
$$;
COMMENT ON FUNCTION orchestration.cancelled_nodes(bigint[]) IS
  'Internal (scheduler): of these nodes (containers in flight), those whose run was cancelled';

-- Crash recovery: every container node still RUNNING, with what its attempt needs.
CREATE FUNCTION orchestration.running_containers()
RETURNS TABLE (node_id bigint, project_id integer, run_id bigint, node_key text, attempt integer,
               container_name text, input jsonb, started_at timestamptz, timeout_seconds integer,
               memory_mb integer, pids_limit integer, capability_id bigint, contract_version text,
               capability text, secrets text[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.id, n.project_id, n.run_id, n.node_key, n.attempt + 1, n.container_name,
         coalesce(n.resolved_input, '{}'), coalesce(n.started_at, clock_timestamp()),
         coalesce(n.timeout_seconds, a.timeout_seconds), coalesce(a.memory_mb, 256),
         coalesce(a.pids_limit, 128), c.id, c.xmin::text, a.name || '.' || n.action, a.secrets
  FROM orchestration.workflow_run_nodes n
  -- An agent or capability deleted meanwhile (by its table's owner: delete_agent refuses
  -- while a run uses it) reads as NULLs, and the scheduler fails the node saying so.
  LEFT JOIN orchestration.agents a ON a.id = n.agent_id
  LEFT JOIN orchestration.agent_capabilities c ON c.agent_id = a.id AND c.name = n.action
  WHERE n.status = 'RUNNING' AND n.container_name IS NOT NULL
$$;
COMMENT ON FUNCTION orchestration.running_containers() IS
  'Internal (scheduler): the RUNNING container nodes, with their container''s name, attempt, input, limits, capability (id and row version) and secret names, for crash recovery';

CREATE FUNCTION orchestration.capability_contract(capability_id bigint)
RETURNS TABLE (input_schema jsonb, output_schema jsonb, documents jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.input_schema, c.output_schema, orchestration.project_schemas(c.project_id, c.schema_refs)
  FROM orchestration.agent_capabilities c WHERE c.id = capability_id
$$;
COMMENT ON FUNCTION orchestration.capability_contract(bigint) IS
  'Internal (scheduler): a capability''s input and output JSON Schemas, and the registered schemas of its project they use ({uri: schema})';

CREATE FUNCTION orchestration.project_secrets(project_id integer, names text[])
RETURNS TABLE (name text, value text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT s.name, s.value FROM orchestration.secrets s WHERE s.project_id = project_secrets.project_id AND s.name = ANY (names)
$$;
COMMENT ON FUNCTION orchestration.project_secrets(integer, text[]) IS
  'Internal (scheduler): the values of a project''s secrets of these names (for a container''s environment, and to mask them in what it prints); no grants';
