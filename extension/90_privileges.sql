-- Who may call what. Functions are executable by PUBLIC unless revoked; start from
-- nothing and grant each function to the roles that need it. The internal helpers are
-- called only from SECURITY DEFINER functions, which run as the extension owner.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA orchestration FROM PUBLIC;

-- Reading: every orchestration role (row-level security limits what each one sees).
GRANT EXECUTE ON FUNCTION
  orchestration.json_schema_valid(jsonb, jsonb),
  orchestration.json_schema_violations(jsonb, jsonb),
  orchestration.json_schema_errors(jsonb, jsonb),
  orchestration.normalize_agent_spec(jsonb),
  orchestration.normalize_workflow_spec(jsonb),
  orchestration.validate_name(text, text),
  orchestration.visible_projects(),
  orchestration.calling_role(),
  orchestration.calling_login(),
  orchestration.in_rule_attempt(),
  orchestration.rule_call(),
  orchestration.agent_json(orchestration.agents),
  orchestration.get_agent(bigint),
  orchestration.find_agent(integer, text),
  orchestration.get_agent(integer, text),
  orchestration.list_agents(integer),
  orchestration.workflow_levels(bigint),
  orchestration.workflow_json(bigint),
  orchestration.get_workflow(bigint),
  orchestration.find_workflow(integer, text),
  orchestration.get_workflow(integer, text),
  orchestration.list_runs(integer, text, text, timestamptz, integer),
  orchestration.events_after(bigint, integer),
  orchestration.pending_approval_of(bigint, text),
  orchestration.run_json(bigint),
  orchestration.started_runs(),
  orchestration.wait_for_run(bigint, interval, text),
  orchestration.wait_for_run(bigint, double precision, text),
  orchestration.wait_for_run(bigint, text, text),
  orchestration.wait_for_runs(bigint[], interval, text),
  orchestration.wait_for_runs(bigint[], double precision, text),
  orchestration.wait_for_runs(bigint[], text, text),
  orchestration.sleep_until_change(double precision),
  orchestration.written_in_this_transaction(xid),
  orchestration.render_graph(text, jsonb, text),
  orchestration.workflow_graph(bigint, text),
  orchestration.run_graph(bigint, text),
  orchestration.metrics()
TO orchestration_admin, orchestration_operator, orchestration_approver;

-- Running: operators (and admins, who are operators too).
GRANT EXECUTE ON FUNCTION
  orchestration.start_workflow(integer, text, jsonb, text, integer),
  orchestration.start_workflow_trigger(),
  orchestration.cancel_run(bigint, text),
  orchestration.retry_run(bigint)
TO orchestration_operator;

-- Answering approvals.
GRANT EXECUTE ON FUNCTION
  orchestration.approve(bigint, text),
  orchestration.reject(bigint, text),
  orchestration.approve_node(bigint, text, text),
  orchestration.reject_node(bigint, text, text)
TO orchestration_approver;

-- Defining: admins.
GRANT EXECUTE ON FUNCTION
  orchestration.grant_project(name, integer),
  orchestration.revoke_project(name, integer),
  orchestration.register_agent(integer, jsonb),
  orchestration.put_agent(integer, jsonb),
  orchestration.update_agent(bigint, jsonb),
  orchestration.update_agent(integer, text, jsonb),
  orchestration.delete_agent(bigint),
  orchestration.delete_agent(integer, text),
  orchestration.set_secret(integer, text, text),
  orchestration.delete_secret(integer, text),
  orchestration.list_secrets(integer),
  orchestration.create_workflow(integer, jsonb),
  orchestration.put_workflow(integer, jsonb),
  orchestration.update_workflow(bigint, jsonb),
  orchestration.update_workflow(integer, text, jsonb),
  orchestration.archive_workflow(bigint),
  orchestration.archive_workflow(integer, text),
  orchestration.register_schema(integer, text, jsonb),
  orchestration.delete_schema(integer, text)
TO orchestration_admin;
