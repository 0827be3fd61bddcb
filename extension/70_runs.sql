-- Runs: starting them (SQL call or table trigger), the node state transitions the
-- scheduler drives, cancelling, retrying and waiting.

CREATE FUNCTION orchestration.wake_scheduler() RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_scheduler';
COMMENT ON FUNCTION orchestration.wake_scheduler() IS
  'Wakes this database''s scheduler worker and a RULE worker when the current transaction commits (nothing happens on rollback): wake_workers(true, true), for a change that may make nodes of either kind runnable';

-- Who is woken by what: runnable RULE nodes need one RULE worker, runnable container nodes
-- the scheduler. Each process woken for nothing competes, on a small machine, with the one
-- that runs the node and with the caller waiting for it.
CREATE FUNCTION orchestration.wake_workers(rule_nodes boolean, container_nodes boolean) RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_wake_workers';
COMMENT ON FUNCTION orchestration.wake_workers(boolean, boolean) IS
  'Internal: when the current transaction commits, wakes a sleeping RULE worker of this database if rule_nodes (all of them when none sleeps; the scheduler with orchestration.rule_workers = 0) and the scheduler if container_nodes; nothing on rollback';

CREATE FUNCTION orchestration.reserve_run(run_id bigint) RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'orch_reserve_run';
COMMENT ON FUNCTION orchestration.reserve_run(bigint) IS
  'Internal: until this transaction ends, the scheduler claims no node of the run, so a caller about to lock the run''s row (cancel_run, retry_run, approve, reject) gets it promptly instead of racing the scheduler for it';

-- W3C trace context: a run is a span, a child of the caller's span when context.traceparent
-- is valid (else the root of a new trace); each node attempt is a child span of its run.
CREATE FUNCTION orchestration.child_traceparent(parent text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN '00-'
         || CASE WHEN parent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
                      AND substr(parent, 4, 32) <> repeat('0', 32)
                 THEN substr(parent, 4, 32)
                 ELSE replace(gen_random_uuid()::text, '-', '') END
         || '-' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 16) || '-01';
END
$$;
COMMENT ON FUNCTION orchestration.child_traceparent(text) IS
  'A W3C traceparent for a new span in the same trace as parent (a new trace when parent is not a valid traceparent): a run''s span in its caller''s trace, a node attempt''s in its run''s';

-- The runs started in the current transaction (by start_workflow, a table trigger or a
-- NATS message the relay turned into runs), kept by the backend: a writer finds the run its
-- INSERT started. A rolled-back savepoint drops its runs; the list ends with the transaction.
CREATE FUNCTION orchestration.note_started_run(run_id bigint) RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'orch_note_started_run';
COMMENT ON FUNCTION orchestration.note_started_run(bigint) IS
  'Internal (create_run): remembers a run started in this transaction, for started_runs()';

-- Ids only: a run a trigger started in a project the writer lacks (the table's owner has
-- it) stays invisible to the writer; its id says no more than that the trigger fired.
CREATE FUNCTION orchestration.started_runs() RETURNS bigint[]
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_started_runs';
COMMENT ON FUNCTION orchestration.started_runs() IS
  'The ids of the runs started in the current transaction so far, in order (by start_workflow, or by a table trigger the caller''s writes fired); empty when none. A rolled-back savepoint takes its runs with it';

-- Creates a run of a workflow: the run row, a copy of every node, one event. Shared by
-- start_workflow, the table trigger and the NATS relay.
CREATE FUNCTION orchestration.create_run(workflow orchestration.workflows, trigger text,
                                         context jsonb, started_by name,
                                         idempotency_key text DEFAULT NULL, priority integer DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  run_id bigint;
BEGIN
  IF workflow.status <> 'ACTIVE' THEN
    RAISE EXCEPTION 'workflow "%" is %; only ACTIVE workflows can be started', workflow.name, workflow.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set "status": "ACTIVE" with orchestration.update_workflow().';
  END IF;
  context := coalesce(context, '{}');
  IF jsonb_typeof(context) <> 'object' THEN
    RAISE EXCEPTION 'run context must be a JSON object, not %', jsonb_typeof(context)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Templates read it as {{ context.<key> }}: pass {"key": value}.';
  END IF;
  INSERT INTO orchestration.workflow_runs AS r
    (workflow_id, project_id, workflow_version, trigger, context, traceparent, started_by,
     started_login, idempotency_key, priority)
  VALUES (workflow.id, workflow.project_id, workflow.version, trigger, context,
          orchestration.child_traceparent(context->>'traceparent'), started_by,
          orchestration.calling_login(), create_run.idempotency_key, create_run.priority)
  RETURNING r.id INTO run_id;
  INSERT INTO orchestration.workflow_run_nodes
    (run_id, project_id, node_key, agent_id, action, inputs, depends_on, approval_required,
     retries, retry_backoff_seconds, timeout_seconds, condition, run_if_skipped, refs,
     dependents, level, pending_deps, priority)
  SELECT run_id, n.project_id, n.node_key, n.agent_id, n.action, n.inputs, n.depends_on,
         n.approval_required, n.retries, n.retry_backoff_seconds, n.timeout_seconds,
         n.condition, n.run_if_skipped, n.refs, n.dependents, n.level, cardinality(n.depends_on),
         create_run.priority
  FROM orchestration.workflow_nodes n
  WHERE n.workflow_id = workflow.id
  ORDER BY n.level, n.node_key;
  PERFORM orchestration.emit_event(workflow.project_id, 'run', 'created', run_id, NULL,
            jsonb_build_object('workflow', workflow.name, 'workflow_id', workflow.id,
                               'status', 'PENDING', 'trigger', trigger, 'started_by', started_by));
  -- The worker its first nodes need (a node whose agent was deleted is failed by the scheduler).
  PERFORM orchestration.wake_workers(bool_or(a.type IS NOT DISTINCT FROM 'RULE'), bool_or(a.type IS DISTINCT FROM 'RULE'))
  FROM orchestration.workflow_nodes n LEFT JOIN orchestration.agents a ON a.id = n.agent_id
  WHERE n.workflow_id = workflow.id AND n.depends_on = '{}';
  PERFORM orchestration.note_started_run(run_id);
  RETURN run_id;
END
$$;
COMMENT ON FUNCTION orchestration.create_run(orchestration.workflows, text, jsonb, name, text, integer) IS
  'Internal: creates a PENDING run of an ACTIVE workflow with a copy of its nodes (and the caller''s idempotency key and priority), in the caller''s transaction, and wakes at commit the workers its first nodes need';

CREATE FUNCTION orchestration.start_workflow(project_id integer, workflow text, context jsonb DEFAULT '{}',
                                             idempotency_key text DEFAULT NULL, priority integer DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  caller name := orchestration.authorize(project_id, 'orchestration_operator');
  target orchestration.workflows;
  run_id bigint;
BEGIN
  -- NULL is a mistake of the caller's, not "nothing": say so rather than start with {}.
  IF workflow IS NULL THEN
    RAISE EXCEPTION 'workflow name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF context IS NULL THEN
    RAISE EXCEPTION 'run context must be a JSON object, not NULL'
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Pass ''{}'' (or leave the argument out) for an empty context.';
  END IF;
  IF idempotency_key IS NOT NULL AND NOT length(idempotency_key) BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION 'an idempotency key must be 1 to 255 characters, not %', length(idempotency_key)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use an id of the request that starts the run, such as a UUID.';
  END IF;
  IF priority IS NULL OR NOT priority BETWEEN -1000 AND 1000 THEN
    RAISE EXCEPTION 'priority must be between -1000 and 1000, not %', coalesce(priority::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Higher runs first; 0 is the default.';
  END IF;
  SELECT * INTO target FROM orchestration.workflows w
  WHERE w.project_id = start_workflow.project_id AND w.name = start_workflow.workflow;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'workflow "%" does not exist in project %', workflow, project_id
      USING ERRCODE = 'undefined_object';
  END IF;
  IF idempotency_key IS NULL THEN
    RETURN orchestration.create_run(target, 'manual', context, caller, NULL, priority);
  END IF;
  -- A key the project has used: that start again, so that run. A start with the key that
  -- has not committed yet makes the insert below wait for it (the unique index), then
  -- fail: the loop looks again, now seeing its run.
  FOR attempt IN 1..2 LOOP
    run_id := orchestration.run_of_idempotency_key(target, context, idempotency_key);
    IF run_id IS NOT NULL THEN
      RETURN run_id;
    END IF;
    BEGIN
      RETURN orchestration.create_run(target, 'manual', context, caller, idempotency_key, priority);
    EXCEPTION WHEN unique_violation THEN
      IF attempt = 2 THEN
        RAISE;
      END IF;
    END;
  END LOOP;
END
$$;
COMMENT ON FUNCTION orchestration.start_workflow(integer, text, jsonb, text, integer) IS
  'Starts a run of an ACTIVE workflow with a context (a JSON object templates read as {{ context.<key> }}; a "traceparent" in it continues that trace) and returns the run id. With an idempotency_key the project has used before, returns that run instead (the same workflow and context, or an error), so a caller can retry a start safely. The nodes of runs with a higher priority (-1000 to 1000, default 0) are claimed first. Runs in the caller''s transaction: a rollback leaves no run. Requires orchestration_operator and the project';

CREATE FUNCTION orchestration.run_of_idempotency_key(workflow orchestration.workflows, context jsonb, idempotency_key text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  earlier record;
BEGIN
  SELECT r.id, r.context, w.name AS workflow INTO earlier
  FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
  WHERE r.project_id = workflow.project_id AND r.idempotency_key = run_of_idempotency_key.idempotency_key;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  -- The same key for another request is the caller's bug: a silent "here is your run"
  -- would hand back a run of something else. A retry may come from another span of the
  -- caller's trace: its traceparent is not part of the request.
  IF earlier.workflow <> workflow.name OR earlier.context - 'traceparent' <> context - 'traceparent' THEN
    RAISE EXCEPTION 'idempotency key "%" was used for run % with another %', idempotency_key, earlier.id,
                    CASE WHEN earlier.workflow <> workflow.name THEN format('workflow ("%s")', earlier.workflow)
                         ELSE 'context' END
      USING ERRCODE = 'unique_violation',
            HINT = 'A key names one start request: use a new key for a new request.';
  END IF;
  RETURN earlier.id;
END
$$;
COMMENT ON FUNCTION orchestration.run_of_idempotency_key(orchestration.workflows, jsonb, text) IS
  'Internal (start_workflow): the run an idempotency key of the workflow''s project started, if the workflow and context match; an error if they do not; NULL for a new key';

-- The table trigger is C and runs as whoever writes the row: turning the row into JSON
-- may call functions of the table owner's choosing (a cast to json of a type of theirs),
-- so it must not happen with the extension owner's privileges. Only the start itself,
-- start_run_from_trigger, runs as the extension owner; the trigger calls it through
-- fmgr, and nobody else may.
CREATE FUNCTION orchestration.start_workflow_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'orch_start_workflow_trigger';
COMMENT ON FUNCTION orchestration.start_workflow_trigger() IS
$$Trigger function: CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger('<project_id>', '<workflow>') starts a run for every row change, in the same transaction, with context {table, operation, new, old}; with more arguments, each '<key>=<column>' (or '<column>', its own key), the context is those columns of the row instead (the new row; the old one for DELETE). started_runs() gives the run's id. The table's owner needs orchestration_operator and the project$$;

CREATE FUNCTION orchestration.start_run_from_trigger(table_oid oid, project_arg text, workflow text,
                                                     operation text, new_row jsonb, old_row jsonb,
                                                     mapping text[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  project integer;
  owner name;
  table_name text;
  quoted_name text;
  target orchestration.workflows;
  context jsonb;
  row_json jsonb := coalesce(new_row, old_row);
  item text;
  context_key text;
  column_name text;
BEGIN
  BEGIN
    project := project_arg::integer;
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RAISE EXCEPTION 'start_workflow_trigger: the first argument must be a project id, not "%"', project_arg
      USING ERRCODE = 'invalid_parameter_value';
  END;
  -- The table's owner chose to attach this trigger, so the owner must be allowed to
  -- start runs in the project; whoever writes the row need not be.
  -- The owner's name as it is (regrole's text output would quote "CI-Deploy").
  SELECT o.rolname, n.nspname || '.' || c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
    INTO owner, table_name, quoted_name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_roles o ON o.oid = c.relowner
  WHERE c.oid = table_oid;
  PERFORM orchestration.authorize(project, 'orchestration_operator', owner);
  SELECT * INTO target FROM orchestration.workflows w
  WHERE w.project_id = project AND w.name = start_run_from_trigger.workflow;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'start_workflow_trigger on %: workflow "%" does not exist in project %',
                    table_name, workflow, project
      USING ERRCODE = 'undefined_object';
  END IF;
  IF cardinality(mapping) = 0 THEN
    context := jsonb_build_object('table', table_name, 'operation', operation, 'new', new_row, 'old', old_row);
  ELSE
    -- The columns the trigger names, under the keys it gives them.
    context := '{}';
    FOREACH item IN ARRAY mapping LOOP
      context_key := CASE WHEN position('=' IN item) > 0 THEN trim(split_part(item, '=', 1)) ELSE trim(item) END;
      column_name := CASE WHEN position('=' IN item) > 0 THEN trim(substr(item, position('=' IN item) + 1)) ELSE trim(item) END;
      IF context_key = '' OR column_name = '' THEN
        RAISE EXCEPTION 'start_workflow_trigger on %: "%" is not <key>=<column> or <column>', table_name, item
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF NOT row_json ? column_name THEN
        RAISE EXCEPTION 'start_workflow_trigger on %: the table has no column "%"', table_name, column_name
          USING ERRCODE = 'undefined_column',
                HINT = 'Its columns: ' || (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
                                            WHERE a.attrelid = table_oid AND a.attnum > 0 AND NOT a.attisdropped) || '.';
      END IF;
      context := context || jsonb_build_object(context_key, row_json->column_name);
    END LOOP;
  END IF;
  RETURN orchestration.create_run(target, 'table:' || quoted_name, context, orchestration.calling_role());
END
$$;
COMMENT ON FUNCTION orchestration.start_run_from_trigger(oid, text, text, text, jsonb, jsonb, text[]) IS
  'Internal: the part of start_workflow_trigger that runs as the extension owner (authorizes the table''s owner, builds the context, creates the run); called only by that trigger, through fmgr';

-- ---------------------------------------------------------------------------------------
-- Node state transitions.
--
-- Lock order: every transaction that changes a run takes the run's row lock before it
-- touches the run's nodes or approvals. The scheduler takes it when it claims (SKIP
-- LOCKED), the API functions first thing; so a transaction waits only while it holds no
-- other lock of that run, and no deadlock can form. The scheduler calls these in its own transactions; each keeps
-- the run's state, its counters and its events consistent.

CREATE FUNCTION orchestration.refresh_run(run_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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
    started_at = coalesce(r.started_at, clock_timestamp()),
    finished_at = CASE WHEN next_status IN ('SUCCESS', 'FAILED') THEN clock_timestamp() END
  WHERE r.id = run_id;
  PERFORM orchestration.emit_event(project, 'run',
            CASE next_status WHEN 'RUNNING' THEN CASE WHEN current_status = 'PENDING' THEN 'started' ELSE 'resumed' END
                             WHEN 'SUCCESS' THEN 'succeeded' WHEN 'FAILED' THEN 'failed'
                             ELSE 'waiting_approval' END,
            run_id, NULL, jsonb_build_object('status', next_status));
END
$$;
COMMENT ON FUNCTION orchestration.refresh_run(bigint) IS
  'Internal: derives a live run''s status from its nodes (RUNNING while something can progress, WAITING_APPROVAL when only approvals can, SUCCESS or FAILED when every node is final) and emits an event when it changes';

-- A node is final as SKIPPED: its dependents either treat it as satisfied (run_if_skipped)
-- or are skipped too, transitively.
CREATE FUNCTION orchestration.skip_node(node_id bigint, reason text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  queue bigint[] := ARRAY[node_id];
  reasons text[] := ARRAY[reason];
  current_id bigint;
  current_reason text;
  node orchestration.workflow_run_nodes;
  dependent orchestration.workflow_run_nodes;
BEGIN
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
-- approvals are closed. Nodes already running finish and are recorded.
CREATE FUNCTION orchestration.fail_node(node_id bigint, error text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  skipped orchestration.workflow_run_nodes;
  run_status orchestration.run_status;
BEGIN
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
  -- Their events in level and key order, as every reader sees them.
  FOR skipped IN
    WITH changed AS (
      UPDATE orchestration.workflow_run_nodes n
         SET status = 'SKIPPED', skip_reason = 'run failed', finished_at = clock_timestamp()
       WHERE n.run_id = node.run_id AND n.status IN ('PENDING', 'WAITING_APPROVAL')
      RETURNING *)
    SELECT * FROM changed ORDER BY level, node_key
  LOOP
    PERFORM orchestration.emit_event(skipped.project_id, 'node', 'skipped', skipped.run_id,
              skipped.node_key, jsonb_build_object('status', 'SKIPPED', 'reason', 'run failed'));
  END LOOP;
  UPDATE orchestration.workflow_approvals a
     SET status = 'REJECTED', responded_at = now(), notes = 'run failed before an answer'
   WHERE a.run_id = node.run_id AND a.status = 'PENDING';
  PERFORM orchestration.emit_event(node.project_id, 'run', 'failed', node.run_id, NULL,
            jsonb_build_object('status', 'FAILED', 'error',
                               format('node "%s" failed: %s', node.node_key, fail_node.error)));
END
$$;
COMMENT ON FUNCTION orchestration.fail_node(bigint, text) IS
  'Internal: fails a node that has not ended (PENDING, RUNNING, WAITING_APPROVAL; else does nothing) for good, fails its run and skips every node of the run that has not started';

-- The lock order above, for a transaction that starts from a node: its run's row first.
-- Returns the run's status.
CREATE FUNCTION orchestration.lock_run_of(node_id bigint) RETURNS orchestration.run_status
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.status FROM orchestration.workflow_runs r
  WHERE r.id = (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = lock_run_of.node_id)
  FOR UPDATE
$$;
COMMENT ON FUNCTION orchestration.lock_run_of(bigint) IS
  'Internal: locks the row of the node''s run (the lock order: a run''s row before its nodes) and returns the run''s status';

-- The outcomes of attempts, in the order given. Each becomes an agent_runs row, and its
-- node moves on: SUCCESS releases its dependents; a failure is retried after exponential
-- backoff while retries remain, else it fails the node and the run. The scheduler records
-- a claim round of RULE nodes in one call (one statement per step, not per node) and a
-- finished container in a call of its own. Arrays left NULL (exit_codes, log_tails,
-- container_ids: RULE attempts have none) count as all NULL.
--
-- This is the scheduler's hot path: a chain of RULE nodes records one node per call, so
-- what a call costs is mostly how many statements it runs and how big their plans are,
-- not the rows. The attempts, their nodes' moves, the released dependents and the events
-- are one statement; a run's status is derived again (refresh_run) only when it may have
-- changed; and the span trigger on agent_runs fires only while tracing is on.
CREATE FUNCTION orchestration.record_attempts(node_ids bigint[], succeeded boolean[], inputs jsonb[],
                                              outputs jsonb[], errors text[],
                                              started_at timestamptz[], finished_at timestamptz[],
                                              scheduler_round bigint,
                                              exit_codes integer[] DEFAULT NULL,
                                              log_tails text[] DEFAULT NULL,
                                              container_ids text[] DEFAULT NULL)
RETURNS void
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
DECLARE
  emitted bigint;
  refreshed bigint[];
  failed_ids bigint[];
  failed_errors text[];
  wake_rule boolean;
  wake_containers boolean;
BEGIN
  IF cardinality(node_ids) IS DISTINCT FROM cardinality(succeeded)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(inputs)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(started_at)
     OR cardinality(node_ids) IS DISTINCT FROM cardinality(finished_at) THEN
    RAISE EXCEPTION 'record_attempts: the arrays must have one element per node'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The lock order: the runs' rows first. The scheduler's claim holds them already for
  -- RULE nodes; a container's result arrives in a transaction of its own, while
  -- cancel_run or approve may hold its run.
  PERFORM 1 FROM orchestration.workflow_runs r
  WHERE r.id IN (SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (node_ids))
  ORDER BY r.id FOR UPDATE OF r;

  WITH attempt AS (
    SELECT u.*, n.project_id, n.run_id, n.node_key, n.agent_id, n.retries, n.dependents, n.attempt + 1 AS number,
           r.status AS run_status, r.traceparent AS run_traceparent,
           CASE WHEN n.status NOT IN ('PENDING', 'RUNNING') THEN NULL  -- cancelled or skipped meanwhile: only the attempt is kept
                WHEN r.status = 'CANCELLED' THEN 'cancelled'            -- a container stopped by cancel_run
                WHEN u.succeeded THEN 'succeeded'
                WHEN n.attempt + 1 <= n.retries THEN 'retrying'
                ELSE 'failed' END AS outcome,
           -- Exponential backoff: retry_backoff_seconds, then twice that, then four times, ...
           u.finished_at + make_interval(secs => n.retry_backoff_seconds * 2 ^ n.attempt) AS retry_at,
           -- The attempt's span: the one its container got, or a new one in the run's trace.
           coalesce(CASE WHEN n.status = 'RUNNING' THEN n.attempt_traceparent END,
                    orchestration.child_traceparent(r.traceparent)) AS traceparent
    FROM unnest(node_ids, succeeded, inputs, outputs, errors, started_at, finished_at,
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
    SELECT t.project_id, t.agent_id, ag.name, t.run_id, t.node_id, t.node_key, t.number, t.input, t.output,
           CASE WHEN t.succeeded THEN 'SUCCESS' ELSE 'FAILED' END::orchestration.run_status,
           t.error, t.exit_code, t.log_tail, t.container_id, scheduler_round, t.started_at,
           t.finished_at, (extract(epoch FROM t.finished_at - t.started_at) * 1000)::integer,
           t.traceparent
    FROM attempt t JOIN orchestration.agents ag ON ag.id = t.agent_id
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
  ), released AS (
    -- Each finished dependency takes one off its dependents' counters (a node succeeding
    -- here is never a dependent of another one recorded here: it ran, so they had ended).
    -- A dependent that is no longer PENDING (skipped when its run failed while this
    -- node's container ran) has a counter nobody reads (retry_run recounts). Each
    -- dependent is looked up by (run_id, node_key) in a subquery of its own, so the plan
    -- is an index probe per dependent whatever the statistics say about the table.
    UPDATE orchestration.workflow_run_nodes d SET pending_deps = d.pending_deps - f.finished
    FROM (SELECT (SELECT d.id FROM orchestration.workflow_run_nodes d
                  WHERE d.run_id = t.run_id AND d.node_key = dependent) AS id, count(*) AS finished
          FROM attempt t, unnest(t.dependents) AS dependent
          WHERE t.outcome = 'succeeded'
          GROUP BY 1) f
    WHERE d.id = f.id
    RETURNING d.run_id, d.status = 'PENDING' AND d.pending_deps <= 0 AS runnable,
              (SELECT a.type FROM orchestration.agents a WHERE a.id = d.agent_id) IS NOT DISTINCT FROM 'RULE' AS rule
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
                         'run/' || t.run_id || '/node/' || t.node_key AS subject) v
    WHERE t.outcome <> 'failed'
    ORDER BY t.position
    RETURNING e.id, e.type, e.run_id
  ), notified AS (
    SELECT count(*) AS events
    FROM (SELECT * FROM inserted ORDER BY id) i,
         LATERAL pg_notify('orchestration_events', orchestration.event_notification(i.id, i.type, i.run_id))
  )
  SELECT (SELECT n.events FROM notified n),
         -- A run that was RUNNING and now has a runnable node stays RUNNING: nothing to derive.
         array_agg(DISTINCT t.run_id) FILTER (WHERE t.outcome = 'succeeded'
                                                AND NOT (t.run_status = 'RUNNING'
                                                         AND t.run_id IN (SELECT l.run_id FROM released l WHERE l.runnable))),
         array_agg(t.node_id ORDER BY t.position) FILTER (WHERE t.outcome = 'failed'),
         array_agg(CASE WHEN t.retries > 0 THEN format('%s (after %s attempts)', t.error, t.number)
                        ELSE t.error END ORDER BY t.position) FILTER (WHERE t.outcome = 'failed'),
         (SELECT bool_or(l.rule) FROM released l WHERE l.runnable),
         (SELECT bool_or(NOT l.rule) FROM released l WHERE l.runnable)
    INTO emitted, refreshed, failed_ids, failed_errors, wake_rule, wake_containers
  FROM attempt t;

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
END
$$;
COMMENT ON FUNCTION orchestration.record_attempts(bigint[], boolean[], jsonb[], jsonb[], text[], timestamptz[], timestamptz[], bigint, integer[], text[], text[]) IS
  'Internal (scheduler): records attempts of nodes (one agent_runs row each, in array order) and moves each node on: SUCCESS releases its dependents; a failure is retried after exponential backoff while retries remain, else fails the node and the run; a node cancelled or skipped meanwhile keeps only the attempt';

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
  started_runs bigint[];
  started_projects integer[];
  lock_project integer := only_project;
BEGIN
  IF node_kind IS NULL OR node_kind NOT IN ('any', 'container', 'rule') THEN
    RAISE EXCEPTION 'claim_nodes: node_kind must be any, container or rule, not %', node_kind
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Every scan below reads the queue index in dispatch order and passes over, in the scan
  -- itself, the rows nobody can lock now (FOR UPDATE SKIP LOCKED: a run another worker or
  -- an API call holds), the runs others are about to lock (reserved_runs) and the projects
  -- left out: however many such nodes there are, they cannot hide the ones behind them.
  -- The run row is locked too, and before the node (OF r, n): whoever changes a run locks
  -- its row first (cancel_run, retry_run, approve, reject do), so no two transactions wait
  -- for each other in a circle; and a scan that passes over a run someone holds takes none
  -- of its nodes on the way (locked in the other order, every node of a held run the scan
  -- looked at stayed locked until its transaction ended, out of reach of the worker
  -- holding the run).
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
      FOR UPDATE OF r, n SKIP LOCKED;
      IF lock_project IS NULL THEN
        RETURN;
      END IF;
    END IF;
    SELECT array_agg(l.id ORDER BY l.priority DESC, l.level, l.id) INTO claimed_ids
    FROM (SELECT n.id, n.level, n.priority
          FROM orchestration.workflow_run_nodes n
          JOIN orchestration.workflow_runs r ON r.id = n.run_id
          WHERE n.status = 'PENDING' AND n.pending_deps = 0
            AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= clock_timestamp())
            AND (SELECT a.type FROM orchestration.agents a WHERE a.id = n.agent_id) = 'RULE' AND n.project_id = lock_project
            AND r.status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL') AND NOT r.id = ANY (reserved_runs)
          ORDER BY n.priority DESC, n.level, n.id
          LIMIT max_nodes
          FOR UPDATE OF r, n SKIP LOCKED) l;
  ELSE
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
      FOR UPDATE OF r, n SKIP LOCKED
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
  END IF;
  IF claimed_ids IS NULL THEN
    RETURN;
  END IF;

  WITH started AS (
    UPDATE orchestration.workflow_runs r SET status = 'RUNNING', started_at = clock_timestamp()
    WHERE r.id = ANY (ARRAY(SELECT n.run_id FROM orchestration.workflow_run_nodes n WHERE n.id = ANY (claimed_ids)))
      AND r.status = 'PENDING'
    RETURNING r.id, r.project_id
  )
  SELECT array_agg(s.id ORDER BY s.id), array_agg(s.project_id ORDER BY s.id)
    INTO started_runs, started_projects FROM started s;
  IF started_runs IS NOT NULL THEN
    PERFORM orchestration.emit_events(
              started_projects, array_fill('orchestration.run.started'::text, ARRAY[cardinality(started_runs)]),
              started_runs, array_fill(NULL::text, ARRAY[cardinality(started_runs)]),
              array_fill('{"status": "RUNNING"}'::jsonb, ARRAY[cardinality(started_runs)]));
  END IF;

  RETURN QUERY
    SELECT claimed.id, claimed.run_id, claimed.project_id, claimed.node_key, claimed.attempt,
           claimed.inputs, claimed.condition, a.name, claimed.action, a.type, a.rule_function,
           a.runs_as,
           coalesce(claimed.timeout_seconds, a.timeout_seconds),
           jsonb_build_object(
             'context', r.context,
             'run', jsonb_build_object('id', r.id, 'project_id', r.project_id, 'trigger', r.trigger,
                                       'started_by', r.started_by, 'traceparent', r.traceparent),
             'workflow', jsonb_build_object('id', w.id, 'name', w.name, 'version', r.workflow_version),
             -- The outputs its templates read, each looked up by (run_id, node_key).
             'nodes', coalesce((SELECT jsonb_object_agg(ref, upstream) FILTER (WHERE upstream IS NOT NULL)
                                FROM (SELECT ref, (SELECT jsonb_build_object('output', u.output)
                                                   FROM orchestration.workflow_run_nodes u
                                                   WHERE u.run_id = claimed.run_id AND u.node_key = ref
                                                     AND u.status = 'SUCCESS') AS upstream
                                      FROM unnest(claimed.refs) AS ref) refs), '{}')),
           -- An approval counts only for the agent and function it was given for: one
           -- changed since (update_agent, CREATE OR REPLACE FUNCTION) is asked about again.
           CASE WHEN claimed.approval_required OR a.risk_level = 'APPROVAL_REQUIRED'
                THEN NOT EXISTS (SELECT 1 FROM orchestration.workflow_approvals ap
                                 WHERE ap.run_node_id = claimed.id AND ap.status = 'APPROVED'
                                   AND ap.agent_pin = orchestration.agent_pin(a.id))
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
    WHERE claimed.id = ANY (claimed_ids)
    ORDER BY claimed.priority DESC, claimed.level, claimed.id;
END
$$;
COMMENT ON FUNCTION orchestration.claim_nodes(integer, integer, integer, bigint[], text, integer[], integer, bigint[]) IS
  'Internal (scheduler, RULE workers): locks runnable nodes of a kind (any, container, rule) in priority and level order, passing over rows others hold (FOR UPDATE SKIP LOCKED), runs that others are about to lock (reserve_run) or whose stopped attempt is not recorded yet, and the excluded projects; containers within the concurrency limits (finished_nodes: RUNNING containers that have finished, not counted); RULE nodes of one project at a time (only_project, or the first it can lock). Returns each node with its agent, its template scope, whether it still needs an approval, and its capability''s id and row version (for the contract cache)';

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
AS $$
DECLARE
  node orchestration.workflow_run_nodes;
  requested timestamptz := clock_timestamp();
  approval_id bigint;
  previous_id bigint;
BEGIN
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
BEGIN
  IF orchestration.lock_run_of(node_id) IS NULL THEN
    RETURN;  -- the node is gone (its run was deleted)
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
-- Operator functions on runs.

CREATE FUNCTION orchestration.run_for_write(run_id bigint, required_role name,
                                            OUT run orchestration.workflow_runs, OUT caller name)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Authorized before the run is announced: announcing holds the scheduler off the run
  -- until this transaction ends, which only someone allowed to change the run may do.
  SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'run % does not exist', coalesce(run_id::text, 'NULL') USING ERRCODE = 'undefined_object';
  END IF;
  caller := orchestration.authorize(run.project_id, required_role, object => 'run ' || run_id);
  PERFORM orchestration.reserve_run(run_id);
  SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = run_id FOR UPDATE;
END
$$;
COMMENT ON FUNCTION orchestration.run_for_write(bigint, name) IS
  'Internal: locks a run for cancel_run/retry_run after checking the caller''s role and project; a run of a project the caller lacks is reported as not existing';

CREATE FUNCTION orchestration.cancel_run(run_id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.run_for_write(run_id, 'orchestration_operator');
  message text;
  cancelled orchestration.workflow_run_nodes;
BEGIN
  IF (target.run).status IN ('SUCCESS', 'FAILED', 'CANCELLED') THEN
    RAISE EXCEPTION 'run % has already finished (%)', run_id, (target.run).status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  message := 'cancelled by ' || target.caller || coalesce(': ' || reason, '');
  UPDATE orchestration.workflow_runs r
     SET status = 'CANCELLED', finished_at = clock_timestamp(), error = message
   WHERE r.id = run_id;
  -- Running containers are stopped by the executor, which then records them CANCELLED.
  FOR cancelled IN
    WITH changed AS (
      UPDATE orchestration.workflow_run_nodes n
         SET status = 'CANCELLED', error = message, finished_at = clock_timestamp()
       WHERE n.run_id = cancel_run.run_id AND n.status IN ('PENDING', 'WAITING_APPROVAL')
      RETURNING *)
    SELECT * FROM changed ORDER BY level, node_key
  LOOP
    PERFORM orchestration.emit_event(cancelled.project_id, 'node', 'cancelled', run_id,
              cancelled.node_key, jsonb_build_object('status', 'CANCELLED'));
  END LOOP;
  UPDATE orchestration.workflow_approvals a
     SET status = 'REJECTED', responded_at = now(), notes = 'run ' || message
   WHERE a.run_id = cancel_run.run_id AND a.status = 'PENDING';
  PERFORM orchestration.emit_event((target.run).project_id, 'run', 'cancelled', run_id, NULL,
            jsonb_build_object('status', 'CANCELLED', 'error', message));
  PERFORM orchestration.wake_scheduler();
END
$$;
COMMENT ON FUNCTION orchestration.cancel_run(bigint, text) IS
  'Cancels a live run: no node starts any more, running containers are stopped, waiting approvals are closed, and the run ends CANCELLED with the reason. Requires orchestration_operator and the project';

CREATE FUNCTION orchestration.retry_run(run_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.run_for_write(run_id, 'orchestration_operator');
BEGIN
  IF (target.run).status <> 'FAILED' THEN
    RAISE EXCEPTION 'run % is %; only FAILED runs can be retried', run_id, (target.run).status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- Failed nodes, and the nodes skipped because the run failed, run again; nodes that
  -- succeeded (or were skipped by their condition) stay as they are.
  UPDATE orchestration.workflow_run_nodes n SET
    status = 'PENDING', error = NULL, skip_reason = NULL, next_attempt_at = NULL,
    finished_at = NULL, output = NULL
  WHERE n.run_id = retry_run.run_id
    AND (n.status = 'FAILED' OR (n.status = 'SKIPPED' AND n.skip_reason = 'run failed'));
  UPDATE orchestration.workflow_run_nodes n SET pending_deps = (
    SELECT count(*) FROM orchestration.workflow_run_nodes d
    WHERE d.run_id = n.run_id AND d.node_key = ANY (n.depends_on)
      AND NOT (d.status = 'SUCCESS' OR (d.status = 'SKIPPED' AND n.run_if_skipped)))
  WHERE n.run_id = retry_run.run_id AND n.status = 'PENDING';
  -- The retry is a span of its own, in the same trace: the first ending's span was sent
  -- already, and a span id is sent once.
  UPDATE orchestration.workflow_runs r SET status = 'RUNNING', finished_at = NULL, error = NULL,
    traceparent = orchestration.child_traceparent(r.traceparent)
  WHERE r.id = run_id;
  PERFORM orchestration.emit_event((target.run).project_id, 'run', 'retried', run_id, NULL,
            jsonb_build_object('status', 'RUNNING', 'retried_by', target.caller));
  PERFORM orchestration.wake_scheduler();
END
$$;
COMMENT ON FUNCTION orchestration.retry_run(bigint) IS
  'Continues a FAILED run from its failed nodes: they (and the nodes skipped because of the failure) run again; successful nodes are not run again. The retry is a new span of the run''s trace. Requires orchestration_operator and the project';

CREATE FUNCTION orchestration.run_json(run_id bigint) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
           'run_id', r.id, 'project_id', r.project_id, 'workflow', w.name,
           'workflow_version', r.workflow_version, 'status', r.status, 'error', r.error,
           'trigger', r.trigger, 'started_by', r.started_by, 'traceparent', r.traceparent,
           'idempotency_key', r.idempotency_key, 'priority', r.priority,
           'created_at', r.created_at, 'started_at', r.started_at, 'finished_at', r.finished_at,
           'duration_ms', (extract(epoch FROM r.finished_at - r.started_at) * 1000)::bigint,
           'nodes', coalesce((
             SELECT jsonb_agg(jsonb_build_object(
                      'node_key', n.node_key, 'status', n.status, 'attempt', n.attempt,
                      'output', n.output, 'error', n.error, 'skip_reason', n.skip_reason,
                      'started_at', n.started_at, 'finished_at', n.finished_at,
                      'duration_ms', (extract(epoch FROM n.finished_at - n.started_at) * 1000)::bigint)
                    ORDER BY n.level, n.node_key)
             FROM orchestration.workflow_run_nodes n WHERE n.run_id = r.id), '[]'))
  FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id
  WHERE r.id = run_json.run_id
$$;
COMMENT ON FUNCTION orchestration.run_json(bigint) IS
  'A run''s summary as JSON: status, error, timings, and each node''s status, attempt, output, error and timings';

CREATE FUNCTION orchestration.sleep_until_change(max_seconds double precision) RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'orch_sleep_until_change';
COMMENT ON FUNCTION orchestration.sleep_until_change(double precision) IS
  'Internal (wait_for_runs): the first call of a transaction starts watching this database and returns at once; later calls sleep until a commit here changes a run or a node, max_seconds pass, or the query is cancelled';

CREATE FUNCTION orchestration.written_in_this_transaction(row_xmin xid) RETURNS boolean
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'orch_written_in_this_transaction';
COMMENT ON FUNCTION orchestration.written_in_this_transaction(xid) IS
  'Internal (wait_for_runs): whether a row version with this xmin was written by the current transaction or one of its subtransactions';

-- Waiting sleeps on the backend's latch, which every commit that writes events in this
-- database sets (sleep_until_change): no polling, and the wait ends within a moment of the
-- commit it waits for. It reads the runs as the caller (row-level security applies).
CREATE FUNCTION orchestration.wait_for_runs(run_ids bigint[], timeout interval DEFAULT '60 seconds',
                                            until text DEFAULT 'settled')
RETURNS SETOF jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  ended text[];
  deadline timestamptz;
  missing bigint;
  waiting integer;
BEGIN
  IF run_ids IS NULL OR array_position(run_ids, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'run ids must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF timeout IS NULL OR until IS NULL THEN
    RAISE EXCEPTION 'wait_for_run: % must not be NULL', CASE WHEN timeout IS NULL THEN 'timeout' ELSE 'until' END
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF timeout < interval '0' THEN
    RAISE EXCEPTION 'wait_for_run: timeout must not be negative (%)', timeout USING ERRCODE = 'invalid_parameter_value';
  END IF;
  ended := CASE until WHEN 'settled' THEN ARRAY['SUCCESS', 'FAILED', 'CANCELLED', 'WAITING_APPROVAL']
                      WHEN 'finished' THEN ARRAY['SUCCESS', 'FAILED', 'CANCELLED'] END;
  IF ended IS NULL THEN
    RAISE EXCEPTION 'wait_for_run: until must be settled or finished, not "%"', until
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'settled: until the run has ended or waits for an approval; finished: until it has ended.';
  END IF;
  SELECT u.id INTO missing FROM unnest(run_ids) u(id)
  WHERE NOT EXISTS (SELECT 1 FROM orchestration.workflow_runs r WHERE r.id = u.id) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'run % does not exist', missing USING ERRCODE = 'undefined_object';
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'wait_for_run needs READ COMMITTED; in % isolation it would never see the run change',
                    upper(current_setting('transaction_isolation'))
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- Started, approved, cancelled... in this transaction (or one of its savepoints): the
  -- workers see that only after COMMIT, and meanwhile this transaction holds the run.
  SELECT r.id INTO missing FROM orchestration.workflow_runs r
  WHERE r.id = ANY (run_ids) AND orchestration.written_in_this_transaction(r.xmin) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'run % was started or changed in this transaction; the scheduler sees that only after COMMIT', missing
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Commit first, then call wait_for_run in a new transaction.';
  END IF;
  deadline := clock_timestamp() + timeout;
  -- Watch before looking: a change committed after this is sure to end a sleep below.
  PERFORM orchestration.sleep_until_change(0);
  LOOP
    SELECT count(*) INTO waiting FROM orchestration.workflow_runs r
    WHERE r.id = ANY (run_ids) AND NOT r.status::text = ANY (ended);
    EXIT WHEN waiting = 0 OR clock_timestamp() >= deadline;
    PERFORM orchestration.sleep_until_change(extract(epoch FROM deadline - clock_timestamp())::float8);
  END LOOP;
  RETURN QUERY
    SELECT CASE WHEN s.summary->>'status' = ANY (ended) THEN s.summary ELSE s.summary || '{"timed_out": true}' END
    FROM (SELECT orchestration.run_json(u.id) AS summary, u.position
          FROM unnest(run_ids) WITH ORDINALITY u(id, position)) s
    ORDER BY s.position;
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_runs(bigint[], interval, text) IS
  'Blocks until every run is settled (SUCCESS, FAILED, CANCELLED or WAITING_APPROVAL; until => ''finished'': SUCCESS, FAILED or CANCELLED) or the timeout passes, then returns each run''s summary (run_json) in the order given, with "timed_out": true on those still going. Woken by the commit that changes a run, not by polling. Needs READ COMMITTED and committed runs';

-- The timeout as a number of seconds, as a driver sends a number: wait_for_runs(ids, 30).
-- A text form, below, keeps wait_for_runs(ids, '30 seconds') unambiguous (PostgreSQL
-- prefers the text candidate for a quoted literal), and reads either spelling.
CREATE FUNCTION orchestration.wait_for_runs(run_ids bigint[], timeout_seconds double precision,
                                            until text DEFAULT 'settled')
RETURNS SETOF jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF timeout_seconds IS NULL OR timeout_seconds = 'NaN' OR timeout_seconds < 0 OR timeout_seconds = 'Infinity' THEN
    RAISE EXCEPTION 'wait_for_run: timeout must be a number of seconds of 0 or more, not %', coalesce(timeout_seconds::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY SELECT * FROM orchestration.wait_for_runs(run_ids, make_interval(secs => timeout_seconds), until);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_runs(bigint[], double precision, text) IS
  'wait_for_runs with the timeout in seconds (a number)';

CREATE FUNCTION orchestration.wait_for_runs(run_ids bigint[], timeout text, until text DEFAULT 'settled')
RETURNS SETOF jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  wait_time interval;
BEGIN
  IF timeout ~ '^\s*[0-9]+(\.[0-9]*)?\s*$' THEN
    RETURN QUERY SELECT * FROM orchestration.wait_for_runs(run_ids, timeout::float8, until);
    RETURN;
  END IF;
  BEGIN
    wait_time := timeout::interval;
  EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
    RAISE EXCEPTION 'wait_for_run: timeout must be an interval or a number of seconds, not "%"', timeout
      USING ERRCODE = 'invalid_parameter_value', HINT = 'For example 30, ''30 seconds'' or ''2 min''.';
  END;
  RETURN QUERY SELECT * FROM orchestration.wait_for_runs(run_ids, wait_time, until);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_runs(bigint[], text, text) IS
  'wait_for_runs with the timeout written as text: an interval (''30 seconds'', ''2 min'') or a number of seconds (''30'')';

CREATE FUNCTION orchestration.wait_for_run(run_id bigint, timeout interval DEFAULT '60 seconds',
                                           until text DEFAULT 'settled')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF run_id IS NULL THEN
    RAISE EXCEPTION 'run_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  RETURN (SELECT w FROM orchestration.wait_for_runs(ARRAY[run_id], timeout, until) w);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_run(bigint, interval, text) IS
  'Blocks until the run is settled (SUCCESS, FAILED, CANCELLED or WAITING_APPROVAL; until => ''finished'': one of the first three) or the timeout passes, and returns its summary (as run_json; "timed_out": true when the timeout passed). Woken by the commit that changes the run, not by polling. Needs READ COMMITTED and a committed run';

CREATE FUNCTION orchestration.wait_for_run(run_id bigint, timeout_seconds double precision,
                                           until text DEFAULT 'settled')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF run_id IS NULL THEN
    RAISE EXCEPTION 'run_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  RETURN (SELECT w FROM orchestration.wait_for_runs(ARRAY[run_id], timeout_seconds, until) w);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_run(bigint, double precision, text) IS
  'wait_for_run with the timeout in seconds (a number)';

CREATE FUNCTION orchestration.wait_for_run(run_id bigint, timeout text,
                                           until text DEFAULT 'settled')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF run_id IS NULL THEN
    RAISE EXCEPTION 'run_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  RETURN (SELECT w FROM orchestration.wait_for_runs(ARRAY[run_id], timeout, until) w);
END
$$;
COMMENT ON FUNCTION orchestration.wait_for_run(bigint, text, text) IS
  'wait_for_run with the timeout written as text: an interval (''30 seconds'', ''2 min'') or a number of seconds (''30'')';
