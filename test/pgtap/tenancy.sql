-- Row-level security and the API's own checks: a role bound to project 1 can neither
-- read nor change anything of project 2, through tables, views or functions.
BEGIN;
SELECT plan(55);

CREATE ROLE tap_admin_p1 LOGIN;
CREATE ROLE tap_admin_p2 LOGIN;
CREATE ROLE tap_operator_p1 LOGIN;
CREATE ROLE tap_team;
CREATE ROLE tap_team_member LOGIN IN ROLE tap_team;
CREATE ROLE tap_outsider LOGIN;
GRANT orchestration_admin TO tap_admin_p1, tap_admin_p2;
GRANT orchestration_operator TO tap_operator_p1, tap_team;
SELECT orchestration.grant_project('tap_admin_p1', 1);
SELECT orchestration.grant_project('tap_admin_p2', 2);
SELECT orchestration.grant_project('tap_operator_p1', 1);
SELECT orchestration.grant_project('tap_team', 2);

CREATE FUNCTION public.tap_rule(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
CREATE FUNCTION public.tap_private_rule(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
REVOKE EXECUTE ON FUNCTION public.tap_private_rule(jsonb) FROM PUBLIC;

SET ROLE tap_admin_p2;
SELECT lives_ok($$SELECT orchestration.register_agent(2, '{"name": "p2-agent", "type": "RULE", "function": "public.tap_rule", "capabilities": [{"name": "run"}]}')$$,
                'the project 2 admin registers an agent in project 2');
SELECT lives_ok($$SELECT orchestration.set_secret(2, 'P2_TOKEN', 'p2-value')$$,
                'the project 2 admin sets a secret in project 2');
RESET ROLE;
CREATE TEMP TABLE p2_agent AS SELECT id FROM orchestration.agents WHERE name = 'p2-agent';
-- A run of project 2 (uncommitted: the scheduler never sees it).
SELECT orchestration.create_workflow(2, '{"name": "p2-run", "nodes": [{"id": "a", "agent": "p2-agent", "action": "run", "approval_required": true}]}');
CREATE TEMP TABLE p2_run AS SELECT orchestration.start_workflow(2, 'p2-run') AS id;
GRANT SELECT ON p2_run TO PUBLIC;
GRANT SELECT ON p2_agent TO PUBLIC;
INSERT INTO orchestration.workflows (project_id, name, created_by) VALUES (2, 'p2-flow', 'tap_admin_p2');

SET ROLE tap_admin_p1;
SELECT lives_ok($$SELECT orchestration.register_agent(1, '{"name": "p1-agent", "type": "RULE", "function": "public.tap_rule", "capabilities": [{"name": "run"}]}')$$,
                'the project 1 admin registers an agent in project 1');
SELECT throws_ok($$SELECT orchestration.register_agent(2, '{"name": "intruder", "type": "RULE", "function": "public.tap_rule", "capabilities": [{"name": "run"}]}')$$,
                 '42501', 'permission denied for project 2',
                 'the project 1 admin cannot register an agent in project 2');
SELECT throws_ok($$SELECT orchestration.register_agent(1, '{"name": "sneaky", "type": "RULE", "function": "public.tap_private_rule", "capabilities": [{"name": "run"}]}')$$,
                 '42501', 'invalid agent spec field "function": role "tap_admin_p1" may not execute public.tap_private_rule(jsonb)',
                 'a RULE agent cannot use a function its registrant may not execute');

-- Reads: tables and functions show project 1 only.
SELECT is((SELECT array_agg(DISTINCT project_id) FROM orchestration.agents), ARRAY[1], 'agents: only project 1 rows are visible');
SELECT is((SELECT array_agg(DISTINCT project_id) FROM orchestration.agent_capabilities), ARRAY[1], 'agent_capabilities: only project 1 rows are visible');
SELECT is((SELECT count(*) FROM orchestration.workflows), 0::bigint, 'workflows: project 2''s workflows are invisible');
SELECT is((SELECT count(*) FROM orchestration.run_summary), 0::bigint, 'run_summary shows no run of project 2');
SELECT is((SELECT count(*) FROM orchestration.node_runs), 0::bigint, 'node_runs shows no node of project 2');
SELECT throws_ok(format('SELECT orchestration.cancel_run(%s)', (SELECT id FROM p2_run)),
                 '42704', format('run %s does not exist', (SELECT id FROM p2_run)),
                 'an admin of project 1 cannot cancel a run of project 2 (nor learn that it exists)');
SELECT is((SELECT count(*) FROM orchestration.list_agents(2)), 0::bigint, 'list_agents(2) is empty for the project 1 admin');
SELECT is((SELECT count(*) FROM orchestration.list_agents(1)), 1::bigint, 'list_agents(1) shows the project 1 agent');
SELECT throws_ok(format('SELECT orchestration.get_agent(%s)', (SELECT id FROM p2_agent)),
                 '42704', format('agent %s does not exist', (SELECT id FROM p2_agent)),
                 'get_agent of a project 2 agent says it does not exist');
-- The by-name forms, the run list, the event reader and the approval by node, as the
-- project 1 admin: project 2 is not there.
SELECT throws_ok($$SELECT orchestration.get_agent(2, 'p2-agent')$$, '42704', 'agent "p2-agent" does not exist in project 2',
                 'get_agent by name of a project 2 agent says it does not exist');
SELECT throws_ok($$SELECT orchestration.delete_agent(2, 'p2-agent')$$, '42704', NULL, 'delete_agent by name in project 2 is refused');
SELECT throws_ok($$SELECT orchestration.archive_workflow(2, 'p2-run')$$, '42704', 'workflow "p2-run" does not exist in project 2',
                 'archive_workflow by name in project 2 is refused');
SELECT is((SELECT count(*) FROM orchestration.list_runs()), 0::bigint, 'list_runs() shows no run of project 2');
SELECT is((SELECT count(*) FROM orchestration.list_runs(2)), 0::bigint, 'nor does list_runs(2)');
SELECT is((SELECT count(*) FROM orchestration.events_after(0) WHERE project_id = 2), 0::bigint, 'events_after shows no event of project 2');
SELECT throws_ok(format($$SELECT orchestration.approve_node(%s, 'a')$$, (SELECT id FROM p2_run)),
                 '42501', NULL, 'approve_node on a run of project 2 is refused');
SELECT throws_ok(format($$SELECT orchestration.wait_for_runs(ARRAY[%s], 0)$$, (SELECT id FROM p2_run)),
                 '42704', format('run %s does not exist', (SELECT id FROM p2_run)), 'wait_for_runs does not see a run of project 2');
SELECT is((SELECT array_agg(project_id) FROM orchestration.project_grants), ARRAY[1], 'project_grants: a role sees its own grants only');
SELECT is((SELECT array_agg(p) FROM orchestration.visible_projects() p), ARRAY[1], 'visible_projects() is project 1');

-- Writes through functions: refused, and without revealing that the agent exists.
SELECT throws_ok(format($$SELECT orchestration.update_agent(%s, '{"name": "hijacked", "type": "RULE", "function": "public.tap_rule", "capabilities": [{"name": "run"}]}')$$, (SELECT id FROM p2_agent)),
                 '42704', NULL, 'update_agent of a project 2 agent is refused');
SELECT throws_ok(format('SELECT orchestration.delete_agent(%s)', (SELECT id FROM p2_agent)),
                 '42704', NULL, 'delete_agent of a project 2 agent is refused');
SELECT throws_ok($$SELECT orchestration.set_secret(2, 'P2_TOKEN', 'overwritten')$$, '42501', 'permission denied for project 2', 'set_secret in project 2 is refused');
SELECT throws_ok($$SELECT orchestration.delete_secret(2, 'P2_TOKEN')$$, '42501', 'permission denied for project 2', 'delete_secret in project 2 is refused');
SELECT throws_ok($$SELECT * FROM orchestration.list_secrets(2)$$, '42501', 'permission denied for project 2', 'list_secrets of project 2 is refused');
SELECT throws_ok($$SELECT orchestration.grant_project('tap_admin_p1', 2)$$, '42501', 'permission denied for project 2', 'a project 1 admin cannot grant itself project 2');
SELECT throws_ok($$SELECT orchestration.revoke_project('tap_admin_p2', 2)$$, '42501', 'permission denied for project 2', 'a project 1 admin cannot revoke project 2 from others');

-- Writes straight into the tables: no privilege at all.
SELECT throws_ok($$INSERT INTO orchestration.agents (project_id, name, type, version, timeout_seconds, registered_by, rule_function) VALUES (2, 'x', 'RULE', '1', 1, 'x', 'f')$$,
                 '42501', NULL, 'direct INSERT into agents is refused');
SELECT throws_ok($$UPDATE orchestration.agents SET version = 'hacked'$$, '42501', NULL, 'direct UPDATE of agents is refused');
SELECT throws_ok($$DELETE FROM orchestration.workflows$$, '42501', NULL, 'direct DELETE from workflows is refused');
SELECT throws_ok($$SELECT * FROM orchestration.secrets$$, '42501', NULL, 'the secrets table cannot be read');
RESET ROLE;

SELECT is((SELECT name || '/' || version FROM orchestration.agents WHERE project_id = 2), 'p2-agent/1.0.0', 'project 2''s agent is unchanged');
SELECT is((SELECT value FROM orchestration.secrets WHERE project_id = 2), 'p2-value', 'project 2''s secret is unchanged');
SELECT is((SELECT count(*) FROM orchestration.project_grants WHERE project_id = 2), 2::bigint, 'project 2''s grants are unchanged');

-- An operator reads its project but cannot change the registry.
SET ROLE tap_operator_p1;
SELECT is((SELECT count(*) FROM orchestration.agents), 1::bigint, 'the project 1 operator sees project 1''s agent');
SELECT throws_ok($$SELECT orchestration.register_agent(1, '{"name": "op", "type": "RULE", "function": "public.tap_rule", "capabilities": [{"name": "run"}]}')$$,
                 '42501', NULL, 'an operator cannot register agents');
RESET ROLE;

-- A grant to a group role reaches its members.
SET ROLE tap_team_member;
SELECT is((SELECT array_agg(DISTINCT project_id) FROM orchestration.agents), ARRAY[2], 'a member of a role granted project 2 sees project 2');
RESET ROLE;

-- A role with no orchestration role cannot even reach the schema.
SET ROLE tap_outsider;
SELECT throws_ok($$SELECT * FROM orchestration.list_agents(1)$$, '42501', NULL, 'a role without an orchestration role is refused');
RESET ROLE;

-- Registered schemas: a project's capabilities can $ref only their own project's.
SET ROLE tap_admin_p2;
SELECT lives_ok($$SELECT orchestration.register_schema(2, 'https://example.com/tap/p2-secret-shape', '{"type": "object", "required": ["p2"]}')$$,
                'the project 2 admin registers a schema in project 2');
RESET ROLE;
SET ROLE tap_admin_p1;
SELECT is((SELECT count(*) FROM orchestration.registered_schemas), 0::bigint, 'registered_schemas: project 2''s schemas are invisible');
SELECT throws_ok($$SELECT orchestration.register_agent(1, '{"name": "borrower", "type": "RULE", "function": "public.tap_rule", "capabilities": [{"name": "run", "input_schema": {"$ref": "https://example.com/tap/p2-secret-shape"}}]}')$$,
                 '22023', 'invalid agent spec field "capabilities[0].input_schema": invalid JSON Schema at /$ref: $ref "https://example.com/tap/p2-secret-shape" does not resolve: no schema is known as "https://example.com/tap/p2-secret-shape"',
                 'a project 1 capability cannot $ref a schema of project 2');
SELECT throws_ok($$SELECT orchestration.register_schema(1, 'https://example.com/tap/borrowed', '{"$ref": "https://example.com/tap/p2-secret-shape"}')$$,
                 '22023', NULL, 'nor can a project 1 registered schema');
SELECT throws_ok($$SELECT orchestration.register_schema(2, 'https://example.com/tap/p2-secret-shape', '{}')$$,
                 '42501', 'permission denied for project 2', 'the project 1 admin cannot change project 2''s schemas');
SELECT throws_ok($$SELECT orchestration.delete_schema(2, 'https://example.com/tap/p2-secret-shape')$$,
                 '42501', 'permission denied for project 2', 'nor delete them');
SELECT lives_ok($$SELECT orchestration.register_schema(1, 'https://example.com/tap/p2-secret-shape', '{"type": "object"}')$$,
                'the same URI in project 1 is project 1''s own schema');
RESET ROLE;
SELECT is((SELECT schema FROM orchestration.registered_schemas WHERE project_id = 2), '{"type": "object", "required": ["p2"]}'::jsonb,
          'and project 2''s is unchanged');

-- revoke_project takes the project away at once.
SELECT orchestration.revoke_project('tap_admin_p1', 1);
SET ROLE tap_admin_p1;
SELECT is((SELECT count(*) FROM orchestration.agents), 0::bigint, 'after revoke_project the admin sees nothing of project 1');
SELECT throws_ok($$SELECT orchestration.register_agent(1, '{"name": "late", "type": "RULE", "function": "public.tap_rule", "capabilities": [{"name": "run"}]}')$$,
                 '42501', 'permission denied for project 1', 'after revoke_project the admin cannot register in project 1');
RESET ROLE;

SELECT throws_ok($$SELECT orchestration.grant_project('no_such_role', 1)$$, '42704', 'role "no_such_role" does not exist', 'granting to a missing role is a clear error');
SELECT lives_ok($$SELECT orchestration.grant_project('tap_admin_p2', 2)$$, 'granting twice is harmless');
SELECT is((SELECT count(*) FROM orchestration.project_grants WHERE role = 'tap_admin_p2'::regrole), 1::bigint, 'and leaves one grant');

SELECT * FROM finish();
ROLLBACK;
