-- Approvals: a node whose agent is APPROVAL_REQUIRED, or that sets approval_required,
-- waits in WAITING_APPROVAL with a PENDING approval until an approver answers.

CREATE FUNCTION orchestration.approval_for_answer(approval_id bigint,
                                                  OUT approval orchestration.workflow_approvals,
                                                  OUT caller name)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  run orchestration.workflow_runs;
BEGIN
  -- The run's row first, then the approval (see the lock order in 70_runs.sql).
  SELECT * INTO approval FROM orchestration.workflow_approvals a WHERE a.id = approval_id;
  IF FOUND THEN
    PERFORM orchestration.reserve_run(approval.workflow_run_id);
    PERFORM 1 FROM orchestration.workflow_runs r WHERE r.id = approval.workflow_run_id FOR UPDATE;
    SELECT * INTO approval FROM orchestration.workflow_approvals a WHERE a.id = approval_id FOR UPDATE;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'approval % does not exist', coalesce(approval_id::text, 'NULL')
      USING ERRCODE = 'undefined_object';
  END IF;
  BEGIN
    caller := orchestration.authorize(approval.project_id, 'orchestration_approver');
  EXCEPTION WHEN insufficient_privilege THEN
    IF pg_has_role(orchestration.calling_role(), 'orchestration_approver', 'USAGE') THEN
      RAISE EXCEPTION 'approval % does not exist', approval_id USING ERRCODE = 'undefined_object';
    END IF;
    RAISE;
  END;
  IF approval.status <> 'PENDING' THEN
    RAISE EXCEPTION 'approval % was already answered: %', approval_id,
                    approval.status || coalesce(' by ' || approval.responded_by, '')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = coalesce('Notes: ' || approval.notes, '');
  END IF;
  SELECT * INTO run FROM orchestration.workflow_runs r WHERE r.id = approval.workflow_run_id;
  IF coalesce(current_setting('orchestration.approval_four_eyes', true), 'off') IN ('on', 'true', '1')
     AND run.started_by = caller THEN
    RAISE EXCEPTION 'role "%" started run % and so cannot answer its approvals', caller, run.id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'orchestration.approval_four_eyes is on: another approver must answer.';
  END IF;
END
$$;
COMMENT ON FUNCTION orchestration.approval_for_answer(bigint) IS
  'Internal: locks a PENDING approval for approve/reject after checking the caller is an approver of the project and, with orchestration.approval_four_eyes, not the role that started the run';

CREATE FUNCTION orchestration.approve(approval_id bigint, notes text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target record := orchestration.approval_for_answer(approval_id);
BEGIN
  UPDATE orchestration.workflow_approvals a
     SET status = 'APPROVED', responded_at = now(), responded_by = target.caller, notes = approve.notes
   WHERE a.id = approval_id;
  UPDATE orchestration.workflow_run_nodes n SET status = 'PENDING'
   WHERE n.id = (target.approval).run_node_id AND n.status = 'WAITING_APPROVAL';
  PERFORM orchestration.emit_event((target.approval).project_id, 'approval', 'approved',
            (target.approval).workflow_run_id, (target.approval).node_key,
            jsonb_build_object('approval_id', approval_id, 'status', 'APPROVED',
                               'responded_by', target.caller, 'notes', notes));
  PERFORM orchestration.refresh_run((target.approval).workflow_run_id);
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
  target record := orchestration.approval_for_answer(approval_id);
BEGIN
  UPDATE orchestration.workflow_approvals a
     SET status = 'REJECTED', responded_at = now(), responded_by = target.caller, notes = reject.notes
   WHERE a.id = approval_id;
  PERFORM orchestration.emit_event((target.approval).project_id, 'approval', 'rejected',
            (target.approval).workflow_run_id, (target.approval).node_key,
            jsonb_build_object('approval_id', approval_id, 'status', 'REJECTED',
                               'responded_by', target.caller, 'notes', notes));
  PERFORM orchestration.fail_node((target.approval).run_node_id,
            format('rejected by %s%s', target.caller, coalesce(': ' || notes, '')));
END
$$;
COMMENT ON FUNCTION orchestration.reject(bigint, text) IS
  'Rejects a PENDING approval: its node fails (no retries), the run fails and what depends on the node is skipped. Requires orchestration_approver and the project';

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
    -- The run's row first (see the lock order in 70_runs.sql); a run someone else is
    -- changing right now is left for the next pass.
    PERFORM 1 FROM orchestration.workflow_runs r WHERE r.id = due.workflow_run_id
      FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    UPDATE orchestration.workflow_approvals a
       SET status = 'REJECTED', responded_at = now(),
           notes = format('expired: no answer within %s', a.expires_at - a.requested_at)
     WHERE a.id = due.id AND a.status = 'PENDING'
    RETURNING * INTO expired;
    CONTINUE WHEN NOT FOUND;
    PERFORM orchestration.emit_event(expired.project_id, 'approval', 'expired',
              expired.workflow_run_id, expired.node_key,
              jsonb_build_object('approval_id', expired.id, 'status', 'REJECTED', 'notes', expired.notes));
    PERFORM orchestration.fail_node(expired.run_node_id, 'approval ' || expired.id || ' ' || expired.notes);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION orchestration.expire_approvals() IS
  'Internal (scheduler): rejects PENDING approvals past their expires_at (orchestration.approval_timeout after the request) and fails their nodes';
