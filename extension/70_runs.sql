-- Runs: starting them (SQL call or table trigger), cancelling, retrying, reading and
-- waiting. What the scheduler and the RULE workers do with a run's nodes is in
-- 75_scheduling.sql.
--
-- Lock order: every transaction that changes a run locks the run's row before it touches
-- the run's nodes or approvals, in one of three strengths:
-- - The API (cancel_run, retry_run, approve, reject) takes it FOR UPDATE, first thing
--   (after reserve_run): it waits for every worker holding nodes of the run, and no worker
--   claims one meanwhile.
-- - A RULE worker claiming nodes takes it FOR KEY SHARE, with the nodes FOR UPDATE, passing
--   over what others hold (SKIP LOCKED): several workers claim and run nodes of one run at
--   once. The scheduler claims with FOR NO KEY UPDATE (below) at once, so that it never
--   waits for a RULE worker that holds the run while a tenant's function runs.
-- - A worker writing what happened (record_attempts, skip_node, fail_node,
--   request_approval, start_container_node, requeue_node, note_crash, expire_approvals:
--   lock_run_of, or start_run_of, which also starts a PENDING run) takes it FOR NO KEY
--   UPDATE, which claims do not wait for: the writers of
--   a run take turns, and each sees what the one before committed (so the last node to
--   finish finds every other one finished and ends the run).
-- A writer waits for no node another worker holds: the nodes it changes are its own, or
-- dependents that are not runnable yet (nobody claims them), or, when a run fails, the
-- nodes nobody holds (fail_node passes over the others; their worker finds the run ended
-- when it writes). Across runs, a writer waits only in run id order: a RULE worker's claim
-- round that holds nodes of several runs takes all their rows in id order before its first
-- write (lock_runs), instead of as its nodes come, a pass never waits for a run below one
-- it holds (dispatch.cpp leaves such nodes for its next transaction), and the claim starts
-- a PENDING run (taking its row) only when it holds nodes of no other run. The scheduler
-- takes what it writes at its claim, passing over what others hold; it waits for runs
-- only first thing in a transaction, in id order (the attempts of containers orphaned by
-- a crash). So writers that wait for each other wait in one order, and no deadlock can
-- form among them. (A tenant's RULE function that calls cancel_run or retry_run would wait
-- for a run while its worker holds others, outside this order: run_for_write does not let
-- it wait.)

-- W3C trace context: a run is a span, a child of the caller's span when context.traceparent
-- is valid (else the root of a new trace); each node attempt is a child span of its run.
CREATE FUNCTION orchestration.child_traceparent(parent text) RETURNS text
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'orch_child_traceparent';
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

-- What ON DELETE CASCADE did for a run's nodes (10_tables.sql says why run_id is not a
-- foreign key), and their attempts (nodes_deleted, below, would find them by node); their
-- approvals go by their key.
CREATE FUNCTION orchestration.delete_nodes_of_deleted_runs() RETURNS trigger
LANGUAGE plpgsql
-- As a foreign key's action ran: as the owner (forget_deleted_agents says why).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Their attempts by the run too: one recorded for a node deleted while its result was
  -- written (no key waits for that) names the run as well.
  DELETE FROM orchestration.agent_runs a WHERE a.run_id = ANY (ARRAY(SELECT d.id FROM deleted_runs d));
  DELETE FROM orchestration.workflow_run_nodes n WHERE n.run_id IN (SELECT d.id FROM deleted_runs d);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.delete_nodes_of_deleted_runs() IS
  'Internal (trigger on workflow_runs): deletes the attempts and nodes of deleted runs (and so their approvals, by their foreign key)';
CREATE TRIGGER runs_deleted AFTER DELETE ON orchestration.workflow_runs
  REFERENCING OLD TABLE AS deleted_runs FOR EACH STATEMENT
  EXECUTE FUNCTION orchestration.delete_nodes_of_deleted_runs();

-- What TRUNCATE ... CASCADE did through the key: truncating the runs removes their nodes
-- and the attempts. The nodes by a DELETE, not a TRUNCATE: the approvals, which reference
-- both, are being truncated by the statement that fired this.
CREATE FUNCTION orchestration.truncate_nodes_of_truncated_runs() RETURNS trigger
LANGUAGE plpgsql
-- As the owner, as forget_deleted_agents (30_registry.sql) says.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- The attempts first, as the key's cascade did (nothing references them): the nodes'
  -- trigger then finds none left to delete.
  TRUNCATE orchestration.agent_runs;
  DELETE FROM orchestration.workflow_run_nodes;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.truncate_nodes_of_truncated_runs() IS
  'Internal (trigger on workflow_runs): truncates the attempts and deletes every run node when the runs are truncated';
CREATE TRIGGER runs_truncated AFTER TRUNCATE ON orchestration.workflow_runs
  FOR EACH STATEMENT EXECUTE FUNCTION orchestration.truncate_nodes_of_truncated_runs();

-- What ON DELETE CASCADE did for a node's attempts (10_tables.sql says why run_node_id is
-- not a foreign key): whoever deletes nodes, the runs_deleted trigger or a DBA, deletes
-- their attempts. Probed by the deleted ids through the run_node_id index, however the
-- planner would guess the size of the transition table.
CREATE FUNCTION orchestration.delete_attempts_of_deleted_nodes() RETURNS trigger
LANGUAGE plpgsql
-- As a foreign key's action ran: as the owner (forget_deleted_agents says why).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  DELETE FROM orchestration.agent_runs a WHERE a.run_node_id = ANY (ARRAY(SELECT d.id FROM deleted_nodes d));
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.delete_attempts_of_deleted_nodes() IS
  'Internal (trigger on workflow_run_nodes): deletes the attempts (agent_runs) of deleted nodes';
CREATE TRIGGER nodes_deleted AFTER DELETE ON orchestration.workflow_run_nodes
  REFERENCING OLD TABLE AS deleted_nodes FOR EACH STATEMENT
  EXECUTE FUNCTION orchestration.delete_attempts_of_deleted_nodes();

-- And what TRUNCATE ... CASCADE did through that key: truncating the nodes (which takes
-- the approvals with them, by theirs) truncates the attempts.
CREATE FUNCTION orchestration.truncate_attempts_of_truncated_nodes() RETURNS trigger
LANGUAGE plpgsql
-- As the owner, as forget_deleted_agents (30_registry.sql) says.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  TRUNCATE orchestration.agent_runs;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION orchestration.truncate_attempts_of_truncated_nodes() IS
  'Internal (trigger on workflow_run_nodes): truncates the attempts (agent_runs) when the nodes are truncated';
CREATE TRIGGER nodes_truncated AFTER TRUNCATE ON orchestration.workflow_run_nodes
  FOR EACH STATEMENT EXECUTE FUNCTION orchestration.truncate_attempts_of_truncated_nodes();

-- Creates a run of a workflow: the run row, a copy of every node, one event. Shared by
-- start_workflow, the table trigger and the NATS relay.
CREATE FUNCTION orchestration.create_run(workflow orchestration.workflows, trigger text,
                                         context jsonb, started_by name,
                                         idempotency_key text DEFAULT NULL, priority integer DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
-- The nodes are copied in node_key order by an index scan, not a bitmap scan and a sort.
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
  run_id bigint;
  event_id bigint;
  first_rule boolean;
  first_container boolean;
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
  -- The run, a copy of every node and the run's created event, in one statement (as three,
  -- with emit_event, they cost a start_workflow call a tenth more); then what emit_event
  -- does after its insert. The copies are made in node_key order (the unique index's): ids
  -- break ties only after level in dispatch order. Which workers the first nodes
  -- need: a node whose agent was deleted is failed by the scheduler.
  WITH run AS (
    INSERT INTO orchestration.workflow_runs AS r
      (workflow_id, project_id, workflow_version, trigger, context, traceparent, started_by,
       started_login, idempotency_key, priority)
    VALUES (workflow.id, workflow.project_id, workflow.version, trigger, context,
            orchestration.child_traceparent(context->>'traceparent'), started_by,
            orchestration.calling_login(), create_run.idempotency_key, create_run.priority)
    RETURNING r.id, r.traceparent
  ), copied AS (
    INSERT INTO orchestration.workflow_run_nodes
      (run_id, project_id, node_key, agent_id, action, inputs, depends_on, approval_required,
       retries, retry_backoff_seconds, timeout_seconds, condition, run_if_skipped, refs,
       dependents, level, pending_deps, priority)
    SELECT run.id, n.project_id, n.node_key, n.agent_id, n.action, n.inputs, n.depends_on,
           n.approval_required, n.retries, n.retry_backoff_seconds, n.timeout_seconds,
           n.condition, n.run_if_skipped, n.refs, n.dependents, n.level, cardinality(n.depends_on),
           create_run.priority
    FROM run, orchestration.workflow_nodes n
    WHERE n.workflow_id = workflow.id
    ORDER BY n.node_key
    RETURNING agent_id, pending_deps
  ), created AS (
    INSERT INTO orchestration.events AS e (project_id, type, subject, run_id, payload)
    SELECT workflow.project_id, 'orchestration.run.created', orchestration.event_subject(run.id, NULL), run.id,
           orchestration.event_document(workflow.project_id, 'orchestration.run.created',
             orchestration.event_subject(run.id, NULL), run.id, NULL, run.traceparent,
             jsonb_build_object('workflow', workflow.name, 'workflow_id', workflow.id, 'status', 'PENDING',
                                'trigger', trigger, 'started_by', started_by))
    FROM run
    RETURNING e.id
  )
  SELECT run.id, created.id, first.rule, first.container
    INTO run_id, event_id, first_rule, first_container
  FROM run, created,
       (SELECT bool_or(a.type IS NOT DISTINCT FROM 'RULE') AS rule, bool_or(a.type IS DISTINCT FROM 'RULE') AS container
        FROM copied c LEFT JOIN orchestration.agents a ON a.id = c.agent_id
        WHERE c.pending_deps = 0) first;
  PERFORM pg_notify('orchestration_events', orchestration.event_notification(event_id, 'orchestration.run.created', run_id));
  PERFORM orchestration.wake_relay();
  PERFORM orchestration.wake_workers(first_rule, first_container, workflow.project_id);
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
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (planned at every call, its statements cost more to plan than to run).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
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
  IF orchestration.in_rule_attempt() THEN
    -- A RULE agent's function runs inside its worker's transaction, which may hold other
    -- runs' rows (its claim, its records so far): waiting here would be a wait outside the
    -- lock order (above), and a deadlock it closed could roll back another worker's pass,
    -- whose functions would then run again. So an agent's call does not wait: the run is
    -- taken now or the call fails (its own run too, while another worker holds nodes of
    -- it). Announced only once taken: an announcement lasts to the end of the worker's
    -- pass, and one left by a failed call would keep every claim off the run meanwhile.
    BEGIN
      SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = run_id FOR UPDATE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
      RAISE EXCEPTION 'run % is in use by another transaction (a worker running its nodes, or a caller changing it); an agent''s function does not wait for a run', run_id
        USING ERRCODE = 'lock_not_available',
              HINT = 'Uncaught, this fails the node; with retries left, it runs again after its backoff.';
    END;
    PERFORM orchestration.reserve_run(run_id);
  ELSE
    PERFORM orchestration.reserve_run(run_id);
    SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = run_id FOR UPDATE;
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.run_for_write(bigint, name) IS
  'Internal: locks a run for cancel_run/retry_run after checking the caller''s role and project; a run of a project the caller lacks is reported as not existing. Called from a RULE agent''s function, it does not wait for a run another transaction holds: it fails (lock_not_available)';

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

-- PL/pgSQL, so that its plan is kept: wait_for_run reads a run through it at least twice.
CREATE FUNCTION orchestration.run_json(run_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT jsonb_build_object(
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
  WHERE r.id = run_json.run_id);
END
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
-- Planned as record_attempts is: one generic plan per statement, made once, never a scan
-- of a whole table (it looks at its runs again at every wake-up).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
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
