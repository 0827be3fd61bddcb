-- A table trigger starts a workflow in the same transaction as the row change.
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 300000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
CREATE FUNCTION public.trg_echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT orchestration.register_agent(31, '{"name": "echo", "type": "RULE", "function": "public.trg_echo", "capabilities": [{"name": "say"}]}') > 0 AS registered;
SELECT orchestration.create_workflow(31, $${"name": "on-order", "trigger": {"type": "table"}, "nodes": [
  {"id": "notice", "agent": "echo", "action": "say",
   "inputs": {"op": "{{ context.operation }}", "table": "{{ context.table }}",
              "order": "{{ context.new.id }}", "line": "order {{ context.new.id }} is {{ context.new.status }}"}}]}$$) > 0 AS created;
-- Only for INSERT and UPDATE here: a DELETE has no "new" row for these templates.
SELECT orchestration.create_workflow(31, $${"name": "on-delete", "nodes": [
  {"id": "notice", "agent": "echo", "action": "say", "inputs": {"op": "{{ context.operation }}", "gone": "{{ context.old.id }}"}}]}$$) > 0 AS created;

CREATE TABLE public.orders (id int PRIMARY KEY, status text);
CREATE TRIGGER orders_start AFTER INSERT OR UPDATE ON public.orders
  FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger('31', 'on-order');
CREATE TRIGGER orders_deleted AFTER DELETE ON public.orders
  FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger('31', 'on-delete');

INSERT INTO public.orders VALUES (1, 'new');
SELECT count(*) AS runs FROM orchestration.workflow_runs WHERE project_id = 31;
-- A row change that rolls back starts nothing.
BEGIN;
INSERT INTO public.orders VALUES (2, 'new');
SELECT count(*) AS runs_inside FROM orchestration.workflow_runs WHERE project_id = 31;
ROLLBACK;
SELECT count(*) AS runs_after_rollback FROM orchestration.workflow_runs WHERE project_id = 31;
UPDATE public.orders SET status = 'paid' WHERE id = 1;
DELETE FROM public.orders WHERE id = 1;

SELECT r.trigger, orchestration.wait_for_run(r.id, '30 seconds')->>'status' AS status
FROM orchestration.workflow_runs r WHERE r.project_id = 31 ORDER BY r.id;
-- (A new statement: the one above saw the outputs as they were when it began.)
SELECT n.output FROM orchestration.workflow_runs r JOIN orchestration.workflow_run_nodes n ON n.run_id = r.id
WHERE r.project_id = 31 ORDER BY r.id;
SELECT context->>'operation' AS operation, context->'new' AS new, context->'old' AS old
FROM orchestration.workflow_runs WHERE project_id = 31 ORDER BY id;

-- Misuse is reported when the trigger fires.
CREATE TABLE public.bad_trigger (id int);
CREATE TRIGGER wrong_level AFTER INSERT ON public.bad_trigger
  FOR EACH STATEMENT EXECUTE FUNCTION orchestration.start_workflow_trigger('31', 'on-order');
INSERT INTO public.bad_trigger VALUES (1);
DROP TRIGGER wrong_level ON public.bad_trigger;
CREATE TRIGGER wrong_project AFTER INSERT ON public.bad_trigger
  FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger('thirty-one', 'on-order');
INSERT INTO public.bad_trigger VALUES (1);
DROP TRIGGER wrong_project ON public.bad_trigger;
CREATE TRIGGER wrong_workflow AFTER INSERT ON public.bad_trigger
  FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger('31', 'no-such');
INSERT INTO public.bad_trigger VALUES (1);
DROP TRIGGER wrong_workflow ON public.bad_trigger;
-- The table's owner must be allowed to start runs in the project, whoever writes the row.
CREATE ROLE trg_table_owner;
ALTER TABLE public.bad_trigger OWNER TO trg_table_owner;
CREATE TRIGGER not_allowed AFTER INSERT ON public.bad_trigger
  FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger('31', 'on-order');
INSERT INTO public.bad_trigger VALUES (1);
GRANT orchestration_operator TO trg_table_owner;
INSERT INTO public.bad_trigger VALUES (1);
SELECT orchestration.grant_project('trg_table_owner', 31);
INSERT INTO public.bad_trigger VALUES (1);
SELECT count(*) AS runs FROM orchestration.workflow_runs WHERE project_id = 31;
DROP TABLE public.bad_trigger, public.orders;
SELECT orchestration.revoke_project('trg_table_owner', 31);
DROP ROLE trg_table_owner;
