-- Who may call what. Functions are executable by PUBLIC unless revoked; start from
-- nothing and grant each function to the roles that need it. The internal helpers are
-- called only from SECURITY DEFINER functions, which run as the extension owner.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA orchestration FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
  orchestration.normalize_agent_spec(jsonb),
  orchestration.validate_name(text, text),
  orchestration.visible_projects(),
  orchestration.calling_role(),
  orchestration.agent_json(orchestration.agents),
  orchestration.get_agent(bigint),
  orchestration.list_agents(integer)
TO orchestration_admin, orchestration_operator, orchestration_approver;

GRANT EXECUTE ON FUNCTION
  orchestration.grant_project(name, integer),
  orchestration.revoke_project(name, integer),
  orchestration.register_agent(integer, jsonb),
  orchestration.update_agent(bigint, jsonb),
  orchestration.delete_agent(bigint),
  orchestration.set_secret(integer, text, text),
  orchestration.delete_secret(integer, text),
  orchestration.list_secrets(integer)
TO orchestration_admin;
