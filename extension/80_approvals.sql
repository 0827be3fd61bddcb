-- Approvals: a node whose agent is APPROVAL_REQUIRED, or that sets approval_required,
-- waits in WAITING_APPROVAL with a PENDING approval until an approver answers.

CREATE FUNCTION orchestration.answer_approval(approval_id bigint,
                                              answer orchestration.approval_status, notes text)
RETURNS orchestration.workflow_approvals
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  approval orchestration.workflow_approvals;
  caller name;
  run orchestration.workflow_runs;
BEGIN
  -- The run's row first, then the approval (see the lock order in 70_runs.sql).
  SELECT * INTO approval FROM orchestration.workflow_approvals a WHERE a.id = approval_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'approval % does not exist', coalesce(approval_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  -- Authorized before the run is announced (see run_for_write).
  caller := orchestration.authorize(approval.project_id, 'orchestration_approver',
                                    object => 'approval ' || approval_id);
  -- Approvals are for people: an agent's code may not answer one, under any role.
  IF orchestration.in_rule_attempt() THEN
    RAISE EXCEPTION 'approval % cannot be answered by an agent (a RULE function runs as "%")',
                    approval_id, caller
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Approvals are answered by people, with approve() or reject() in their own sessions.';
  END IF;
  PERFORM orchestration.reserve_run(approval.run_id);
  PERFORM 1 FROM orchestration.workflow_runs r WHERE r.id = approval.run_id FOR UPDATE;
  SELECT * INTO approval FROM orchestration.workflow_approvals a WHERE a.id = approval_id FOR UPDATE;
  IF approval.status <> 'PENDING' THEN
    RAISE EXCEPTION 'approval % was already answered: %', approval_id,
                    approval.status || coalesce(' by ' || approval.responded_by, '')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = coalesce('Notes: ' || approval.notes, '');
  END IF;
  -- The deadline holds where the answer is given, not only when the scheduler gets round
  -- to expiring it.
  IF approval.expires_at IS NOT NULL AND approval.expires_at <= clock_timestamp() THEN
    RAISE EXCEPTION 'approval % expired at %; it can no longer be answered', approval_id, approval.expires_at
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'The scheduler rejects expired approvals and fails their nodes; retry the run with orchestration.retry_run() to ask again.';
  END IF;
  SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = approval.run_id;
  -- Four eyes compare people, not roles: the login that started the run may not answer
  -- it under any role it can switch to (SET ROLE to a group it belongs to included).
  IF coalesce(current_setting('orchestration.approval_four_eyes', true), 'off') IN ('on', 'true', '1')
     AND (run.started_by = caller OR run.started_login = orchestration.calling_login()) THEN
    RAISE EXCEPTION 'role "%" started run % and so cannot answer its approvals',
                    orchestration.calling_login(), run.id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'orchestration.approval_four_eyes is on: another approver must answer.';
  END IF;
  UPDATE orchestration.workflow_approvals a
     SET status = answer, responded_at = now(), responded_by = caller, notes = answer_approval.notes
   WHERE a.id = approval_id
  RETURNING * INTO approval;
  PERFORM orchestration.emit_event(approval.project_id, 'approval', lower(answer::text),
            approval.run_id, approval.node_key,
            jsonb_build_object('approval_id', approval_id, 'status', answer,
                               'responded_by', caller, 'notes', notes));
  RETURN approval;
END
$$;
COMMENT ON FUNCTION orchestration.answer_approval(bigint, orchestration.approval_status, text) IS
  'Internal: records an answer to a PENDING, unexpired approval (and its event) after checking the caller is an approver of the project and, with orchestration.approval_four_eyes, neither the role nor the login that started the run';

CREATE FUNCTION orchestration.approve(approval_id bigint, notes text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  approval orchestration.workflow_approvals := orchestration.answer_approval(approval_id, 'APPROVED', notes);
BEGIN
  UPDATE orchestration.workflow_run_nodes n SET status = 'PENDING'
   WHERE n.id = approval.run_node_id AND n.status = 'WAITING_APPROVAL';
  PERFORM orchestration.refresh_run(approval.run_id);
  PERFORM orchestration.wake_scheduler();
END
$$;
COMMENT ON FUNCTION orchestration.approve(bigint, text) IS
  'Approves a PENDING approval: its node runs. Records who (the calling role) and when. Requires orchestration_approver and the project; with orchestration.approval_four_eyes = on, the role that started the run cannot approve it';

CREATE FUNCTION orchestration.reject(approval_id bigint, notes text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  approval orchestration.workflow_approvals := orchestration.answer_approval(approval_id, 'REJECTED', notes);
BEGIN
  PERFORM orchestration.fail_node(approval.run_node_id,
            format('rejected by %s%s', approval.responded_by, coalesce(': ' || notes, '')));
END
$$;
COMMENT ON FUNCTION orchestration.reject(bigint, text) IS
  'Rejects a PENDING approval: its node fails (no retries), the run fails and what depends on it is skipped. Requires orchestration_approver and the project';

CREATE FUNCTION orchestration.expire_approvals() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  due orchestration.workflow_approvals;
  expired orchestration.workflow_approvals;
  n integer := 0;
BEGIN
  FOR due IN
    SELECT * FROM orchestration.workflow_approvals a
    WHERE a.status = 'PENDING' AND a.expires_at <= clock_timestamp()
    ORDER BY a.expires_at
  LOOP
    -- The run's row first, for writing (see the lock order in 70_runs.sql); a run someone
    -- else is changing right now is left for the next pass.
    PERFORM 1 FROM orchestration.workflow_runs r WHERE r.id = due.run_id
      FOR NO KEY UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    UPDATE orchestration.workflow_approvals a
       SET status = 'REJECTED', responded_at = now(),
           notes = format('expired: no answer within %s', a.expires_at - a.requested_at)
     WHERE a.id = due.id AND a.status = 'PENDING'
    RETURNING * INTO expired;
    CONTINUE WHEN NOT FOUND;
    PERFORM orchestration.emit_event(expired.project_id, 'approval', 'expired',
              expired.run_id, expired.node_key,
              jsonb_build_object('approval_id', expired.id, 'status', 'REJECTED', 'notes', expired.notes));
    PERFORM orchestration.fail_node(expired.run_node_id, 'approval ' || expired.id || ' ' || expired.notes);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION orchestration.expire_approvals() IS
  'Internal (scheduler): rejects PENDING approvals past their expires_at (orchestration.approval_timeout after the request) and fails their nodes';

-- Answering by run and node, as an approver knows them ("approve build 7's deploy").
-- The approval is looked up as the caller (row-level security) and answered by approve
-- and reject, which check who may answer.
CREATE FUNCTION orchestration.pending_approval_of(run_id bigint, node_key text) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  node_status text;
  approval_id bigint;
BEGIN
  IF run_id IS NULL OR node_key IS NULL THEN
    RAISE EXCEPTION 'run_id and node_key must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM orchestration.workflow_runs r WHERE r.id = pending_approval_of.run_id) THEN
    RAISE EXCEPTION 'run % does not exist', run_id USING ERRCODE = 'undefined_object';
  END IF;
  SELECT n.status::text INTO node_status FROM orchestration.workflow_run_nodes n
  WHERE n.run_id = pending_approval_of.run_id AND n.node_key = pending_approval_of.node_key;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'run % has no node "%"', run_id, node_key USING ERRCODE = 'undefined_object',
      HINT = (SELECT 'Its nodes: ' || string_agg(n.node_key, ', ' ORDER BY n.level, n.node_key) || '.'
              FROM orchestration.workflow_run_nodes n WHERE n.run_id = pending_approval_of.run_id);
  END IF;
  SELECT a.id INTO approval_id FROM orchestration.workflow_approvals a
  WHERE a.run_id = pending_approval_of.run_id AND a.node_key = pending_approval_of.node_key AND a.status = 'PENDING'
  ORDER BY a.id DESC LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'node "%" of run % is not waiting for an approval (it is %)', node_key, run_id, node_status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN approval_id;
END
$$;
COMMENT ON FUNCTION orchestration.pending_approval_of(bigint, text) IS
  'The id of the approval a node of a run is waiting for; an error saying why when there is none';

CREATE FUNCTION orchestration.approve_node(run_id bigint, node_key text, notes text DEFAULT NULL) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.approve(orchestration.pending_approval_of(run_id, node_key), notes) $$;
COMMENT ON FUNCTION orchestration.approve_node(bigint, text, text) IS
  'approve by run and node: approves the approval that node is waiting for';

CREATE FUNCTION orchestration.reject_node(run_id bigint, node_key text, notes text DEFAULT NULL) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT orchestration.reject(orchestration.pending_approval_of(run_id, node_key), notes) $$;
COMMENT ON FUNCTION orchestration.reject_node(bigint, text, text) IS
  'reject by run and node: rejects the approval that node is waiting for';
