#!/usr/bin/env bash
# Containment (issue 13): each attack a hostile project admin (mallory, project 2) or a
# careless agent can make, performed for real against the cluster, the scheduler and the
# Docker engine, and the property that must hold afterwards.
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }
as() { local role=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 -U "$role" -c "$@"; }
superuser() { q "SELECT rolsuper FROM pg_roles WHERE rolname = '$1'"; }

q "DROP SCHEMA IF EXISTS mallory CASCADE" >/dev/null 2>&1
for r in mallory alice nobody; do q "DROP OWNED BY $r" >/dev/null 2>&1; q "DROP ROLE IF EXISTS $r" >/dev/null 2>&1; done
q "CREATE ROLE mallory LOGIN; CREATE ROLE alice LOGIN; CREATE ROLE nobody LOGIN"
q "GRANT orchestration_admin TO mallory, alice; GRANT orchestration_approver TO alice"
q "SELECT orchestration.grant_project('alice', 1), orchestration.grant_project('mallory', 2)" >/dev/null
q "CREATE SCHEMA mallory AUTHORIZATION mallory"
q "CREATE FUNCTION public.echo(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT input \$\$"
q "GRANT EXECUTE ON FUNCTION public.echo(jsonb) TO PUBLIC"
as alice "SELECT orchestration.register_agent(1, '{\"name\": \"echo\", \"type\": \"RULE\", \"function\": \"public.echo\", \"capabilities\": [{\"name\": \"say\"}]}')" >/dev/null
as alice "SELECT orchestration.create_workflow(1, '{\"name\": \"hello\", \"nodes\": [{\"id\": \"a\", \"agent\": \"echo\", \"action\": \"say\", \"inputs\": {\"hi\": 1}}]}')" >/dev/null
# runs_past HOLDER-PID WHAT: another project's run finishes while a transaction of
# mallory's (in process HOLDER-PID) is open, and before that transaction ends.
runs_past() {
  local other holder_end
  other=$(as alice "SELECT orchestration.start_workflow(1, 'hello')")
  is "$(q "SELECT orchestration.wait_for_run($other, '60 s')->>'status'")" "SUCCESS" "another project's run finishes while $2"
  wait "$1"
  holder_end=$(q "SELECT clock_timestamp()")
  is "$(q "SELECT finished_at < '$holder_end' FROM orchestration.workflow_runs WHERE id = $other")" "t" \
     "and before that transaction ended: the scheduler did not wait for it"
}
project1_runs() {  # another tenant's run finishes while whatever mallory did goes on
  local run; run=$(as alice "SELECT orchestration.start_workflow(1, 'hello')")
  q "SELECT orchestration.wait_for_run($run, '60 s')->>'status'"
}

# --- 1. No path from a project role to superuser or to another project ------------------
# A temp table named like the extension's old scratch table, with a trigger, in the caller's
# pg_temp: SECURITY DEFINER code must never write to it.
out=$(psql -X -q -At -U mallory 2>&1 <<'SQL'
CREATE TEMP TABLE orchestration_spec_nodes (ordinal bigint, node_key text, agent_name text, action text,
  node jsonb, agent_id bigint, capability_exists boolean);
CREATE FUNCTION mallory.escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; RETURN NEW; END $$;
CREATE TRIGGER escalate BEFORE INSERT ON pg_temp.orchestration_spec_nodes
  FOR EACH ROW EXECUTE FUNCTION mallory.escalate();
SELECT orchestration.register_agent(2, '{"name": "echo", "type": "RULE", "function": "public.echo", "capabilities": [{"name": "say"}]}') > 0;
SELECT orchestration.create_workflow(2, '{"name": "w", "nodes": [{"id": "a", "agent": "echo", "action": "say"}]}') > 0;
SQL
)
is "$(superuser mallory)" "f" "a temp table with a trigger does not make the caller a superuser through create_workflow"
is "$(q "SELECT count(*) FROM orchestration.workflow_nodes n JOIN orchestration.workflows w ON w.id = n.workflow_id WHERE w.project_id = 2 AND w.name = 'w'")" "1" \
   "the workflow is stored all the same ($(echo "$out" | tr '\n' ' ' | cut -c1-80))"

# A table trigger whose row holds a type with a cast to json of the table owner's: turning the
# row into JSON runs that cast, which must not run as the extension's owner.
out=$(psql -X -q -At -U mallory 2>&1 <<'SQL'
CREATE TYPE mallory.boom AS ENUM ('x');
CREATE FUNCTION mallory.boom_json(mallory.boom) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN json_build_object('as', current_user);
END $$;
CREATE CAST (mallory.boom AS json) WITH FUNCTION mallory.boom_json(mallory.boom);
CREATE TABLE mallory.orders (id int, b mallory.boom);
CREATE TRIGGER start AFTER INSERT ON mallory.orders
  FOR EACH ROW EXECUTE FUNCTION orchestration.start_workflow_trigger('2', 'w');
INSERT INTO mallory.orders VALUES (1, 'x');
SQL
)
is "$(superuser mallory)" "f" "a cast to json in a triggering row runs as the writer, not as the extension owner"
is "$(q "SELECT context->'new'->'b'->>'as' FROM orchestration.workflow_runs WHERE trigger = 'table:mallory.orders'")" "mallory" \
   "the trigger started the run with the row as the writer sees it ($(echo "$out" | tr '\n' ' ' | cut -c1-60))"

# A RULE function acts with its owner's authority only: the API's own checks see it.
psql -X -q -U mallory >/dev/null 2>&1 <<'SQL'
CREATE TABLE mallory.called (what text);
CREATE FUNCTION mallory.grab(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM orchestration.grant_project('mallory', 1);
  RETURN '{}';
END $$;
CREATE FUNCTION mallory.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO mallory.called VALUES (current_user);
  BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN pg_catalog.clock_timestamp();
END $$;
GRANT INSERT ON mallory.called TO PUBLIC;
CREATE FUNCTION mallory.settings(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('search_path', 'mallory, pg_catalog', false);
  RETURN jsonb_build_object('user', current_user, 'caller', orchestration.calling_role());
END $$;
SELECT orchestration.register_agent(2, '{"name": "grab", "type": "RULE", "function": "mallory.grab", "capabilities": [{"name": "go"}]}');
SELECT orchestration.register_agent(2, '{"name": "settings", "type": "RULE", "function": "mallory.settings", "capabilities": [{"name": "go"}]}');
SELECT orchestration.create_workflow(2, '{"name": "grab", "nodes": [{"id": "a", "agent": "grab", "action": "go"}]}');
SELECT orchestration.create_workflow(2, '{"name": "settings", "nodes": [{"id": "a", "agent": "settings", "action": "go"}]}');
SQL
run=$(as mallory "SELECT orchestration.start_workflow(2, 'grab')")
error=$(q "SELECT orchestration.wait_for_run($run, '60 s')->'nodes'->0->>'error'")
is "$error" "permission denied for project 1" "a RULE function cannot grant itself another project: the API sees its role"
is "$(q "SELECT count(*) FROM orchestration.project_grants WHERE role = 'mallory'::regrole AND project_id = 1")" "0" "no grant was written"
run=$(as mallory "SELECT orchestration.start_workflow(2, 'settings')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->'nodes'->0->>'output'")" '{"user": "mallory", "caller": "mallory"}' \
   "a RULE function runs as its owner and calling_role() answers that role"
is "$(project1_runs)" "SUCCESS" "the scheduler goes on after a RULE function changed search_path"
is "$(q "SELECT count(*) FROM mallory.called")" "0" "no setting of a RULE function outlives its attempt (the attacker's clock_timestamp was never called)"
is "$(superuser mallory)" "f" "mallory is still no superuser"

# At-commit code: a trigger a RULE function defers would run at the worker's commit, as
# the worker's role (a superuser), outside the attempt. PostgreSQL refuses to queue one in
# a security-restricted operation, which an attempt is: the attempt fails, in its node.
psql -X -q -U mallory >/dev/null 2>&1 <<'SQL'
CREATE TABLE mallory.later (x int);
CREATE FUNCTION mallory.at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON mallory.later
  DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW EXECUTE FUNCTION mallory.at_commit();
CREATE FUNCTION mallory.defer(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  SET CONSTRAINTS ALL DEFERRED;
  INSERT INTO mallory.later VALUES (1);
  RETURN '{}';
END $$;
SELECT orchestration.register_agent(2, '{"name": "defer", "type": "RULE", "function": "mallory.defer", "capabilities": [{"name": "go"}]}');
SELECT orchestration.create_workflow(2, '{"name": "defer", "nodes": [{"id": "a", "agent": "defer", "action": "go"}]}');
SQL
run=$(as mallory "SELECT orchestration.start_workflow(2, 'defer')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->'nodes'->0->>'error'")" \
   "cannot fire deferred trigger within security-restricted operation" "a RULE function cannot defer a trigger to the worker's commit"
is "$(superuser mallory)" "f" "nothing ran as the worker's role"
is "$(project1_runs)" "SUCCESS" "and the workers go on"

# Who a RULE agent runs as: the role that last set its function.
q "CREATE FUNCTION public.safe(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
q "SELECT orchestration.register_agent(2, '{\"name\": \"by-super\", \"type\": \"RULE\", \"function\": \"public.safe\", \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null
psql -X -q -U mallory >/dev/null 2>&1 <<'SQL'
CREATE FUNCTION mallory.whoami(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN jsonb_build_object('user', current_user);
END $$;
SELECT orchestration.update_agent(a.id, orchestration.get_agent(a.id) || '{"function": "mallory.whoami"}')
FROM orchestration.agents a WHERE a.project_id = 2 AND a.name = 'by-super';
SELECT orchestration.create_workflow(2, '{"name": "whoami", "nodes": [{"id": "a", "agent": "by-super", "action": "go"}]}');
SQL
run=$(as mallory "SELECT orchestration.start_workflow(2, 'whoami')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->'nodes'->0->>'output'")" '{"user": "mallory"}' \
   "a superuser's RULE agent re-pointed by a project admin runs as that admin"
is "$(superuser mallory)" "f" "and cannot make itself superuser"
# The role that set the function must still be allowed to execute it when it runs.
q "REVOKE EXECUTE ON FUNCTION mallory.whoami(jsonb) FROM PUBLIC" >/dev/null
q "REVOKE EXECUTE ON FUNCTION mallory.whoami(jsonb) FROM mallory" >/dev/null
run=$(as mallory "SELECT orchestration.start_workflow(2, 'whoami')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->'nodes'->0->>'error'")" \
   "role \"mallory\" may not execute mallory.whoami(jsonb) (a RULE agent's function runs as the role that last set it; GRANT EXECUTE to it and USAGE on its schema)" \
   "a RULE agent whose role lost EXECUTE on its function fails instead of running it"

# A RULE function owned by someone else: its owner could change it and so act as whoever
# set the agent. And one in a schema the setting role may not use.
q "CREATE FUNCTION mallory.helper(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
q "ALTER FUNCTION mallory.helper(jsonb) OWNER TO mallory"
err=$(q "SELECT orchestration.register_agent(2, '{\"name\": \"dba\", \"type\": \"RULE\", \"function\": \"mallory.helper\", \"capabilities\": [{\"name\": \"go\"}]}')" 2>&1)
is "$(echo "$err" | head -1)" 'ERROR:  invalid agent spec field "function": mallory.helper(jsonb) is owned by role "mallory", who could change what it does and so act as "postgres"' \
   "a superuser cannot set a RULE agent to a function a tenant owns"
q "DROP SCHEMA IF EXISTS alice CASCADE; CREATE SCHEMA alice AUTHORIZATION alice" >/dev/null
as alice "CREATE FUNCTION alice.export(input jsonb) RETURNS jsonb LANGUAGE sql SECURITY DEFINER AS \$\$ SELECT '{\"card\": \"4111\"}'::jsonb \$\$" >/dev/null
err=$(as mallory "SELECT orchestration.register_agent(2, '{\"name\": \"thief\", \"type\": \"RULE\", \"function\": \"alice.export\", \"capabilities\": [{\"name\": \"go\"}]}')" 2>&1)
is "$(echo "$err" | head -1)" 'ERROR:  invalid agent spec field "function": role "mallory" may not execute alice.export(jsonb)' \
   "a RULE agent cannot run a function in a schema its role may not use"

# Approvals are for people: a RULE function cannot answer one, whatever role it runs as.
psql -X -q -U mallory >/dev/null 2>&1 <<'SQL'
CREATE FUNCTION mallory.bot(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM orchestration.approve((input->>'approval_id')::bigint); RETURN '{}'; END $$;
SELECT orchestration.register_agent(2, '{"name": "bot", "type": "RULE", "function": "mallory.bot", "capabilities": [{"name": "go"}]}');
SELECT orchestration.register_agent(2, '{"name": "gate", "type": "RULE", "function": "public.echo", "risk_level": "APPROVAL_REQUIRED", "capabilities": [{"name": "go"}]}');
SELECT orchestration.create_workflow(2, '{"name": "bot", "nodes": [{"id": "a", "agent": "bot", "action": "go", "inputs": {"approval_id": "{{ context.approval_id }}"}}]}');
SELECT orchestration.create_workflow(2, '{"name": "gated", "nodes": [{"id": "a", "agent": "gate", "action": "go"}]}');
SQL
q "GRANT orchestration_approver TO mallory" >/dev/null
gated=$(as mallory "SELECT orchestration.start_workflow(2, 'gated')")
wait_for 30 "SELECT count(*) = 1 FROM orchestration.workflow_approvals WHERE run_id = $gated"
approval=$(q "SELECT id FROM orchestration.workflow_approvals WHERE run_id = $gated")
run=$(as mallory "SELECT orchestration.start_workflow(2, 'bot', jsonb_build_object('approval_id', $approval))")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->'nodes'->0->>'error'")" \
   "approval $approval cannot be answered by an agent (a RULE function runs as \"mallory\")" "a RULE function cannot answer an approval"
is "$(q "SELECT status FROM orchestration.workflow_approvals WHERE id = $approval")" "PENDING" "the approval is still pending"

# Nor does a RULE function wait for a run: its worker's transaction may hold other runs'
# rows, and a wait there is outside the lock order (a deadlock it closed would roll back
# another worker's pass). cancel_run on a run another transaction holds fails at once, and
# the node with it; a run nobody holds is cancelled.
psql -X -q -U mallory >/dev/null 2>&1 <<'SQL'
CREATE FUNCTION mallory.canceller(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM orchestration.cancel_run((input->>'run_id')::bigint, 'by an agent'); RETURN '{}'; END $$;
SELECT orchestration.register_agent(2, '{"name": "canceller", "type": "RULE", "function": "mallory.canceller", "capabilities": [{"name": "go"}]}');
SELECT orchestration.create_workflow(2, '{"name": "canceller", "nodes": [{"id": "a", "agent": "canceller", "action": "go", "timeout_seconds": 30, "inputs": {"run_id": "{{ context.run_id }}"}}]}');
SQL
target=$(as mallory "SELECT orchestration.start_workflow(2, 'gated')")
wait_for 30 "SELECT count(*) = 1 FROM orchestration.workflow_approvals WHERE run_id = $target"
# The run's row held as a RULE worker's claim holds it, for 8 seconds; the holder prints
# the time just before it commits.
holder_end=$(mktemp)
psql -X -q -At -v ON_ERROR_STOP=1 >"$holder_end" <<SQL &
BEGIN; SELECT 1 FROM orchestration.workflow_runs WHERE id = $target FOR KEY SHARE \g /dev/null
SELECT pg_sleep(8) \g /dev/null
SELECT clock_timestamp(); COMMIT;
SQL
holder=$!
wait_for 10 "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(8)%' AND wait_event = 'PgSleep'"
ok $? "a session holds the run's row as a RULE worker's claim does"
run=$(as mallory "SELECT orchestration.start_workflow(2, 'canceller', jsonb_build_object('run_id', $target))")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->'nodes'->0->>'error'")" \
   "run $target is in use by another transaction (a worker running its nodes, or a caller changing it); an agent's function does not wait for a run" \
   "a RULE function's cancel_run of a run another transaction holds fails at once"
is "$(q "SELECT status FROM orchestration.workflow_runs WHERE id = $target")" "WAITING_APPROVAL" "and the run is not cancelled"
wait "$holder"
is "$(q "SELECT finished_at < '$(cat "$holder_end")' FROM orchestration.workflow_runs WHERE id = $run")" "t" \
   "the node ended before the transaction holding the run did: its function did not wait"
rm -f "$holder_end"
run=$(as mallory "SELECT orchestration.start_workflow(2, 'canceller', jsonb_build_object('run_id', $target))")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->>'status'") $(q "SELECT status || ': ' || error FROM orchestration.workflow_runs WHERE id = $target")" \
   "SUCCESS CANCELLED: cancelled by mallory: by an agent" "a run nobody holds, a RULE function cancels"
# Its own run, alone in it: its worker holds the run already, there is nothing to wait for.
# And a FAILED run nobody holds, it retries.
psql -X -q -U mallory >/dev/null 2>&1 <<'SQL'
CREATE FUNCTION mallory.quitter(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM orchestration.cancel_run((orchestration.rule_call()->>'run_id')::bigint, 'quits'); RETURN '{}'; END $$;
CREATE FUNCTION mallory.boom(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$;
CREATE FUNCTION mallory.retrier(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM orchestration.retry_run((input->>'run_id')::bigint); RETURN '{}'; END $$;
SELECT orchestration.register_agent(2, '{"name": "quitter", "type": "RULE", "function": "mallory.quitter", "capabilities": [{"name": "go"}]}');
SELECT orchestration.register_agent(2, '{"name": "boom", "type": "RULE", "function": "mallory.boom", "capabilities": [{"name": "go"}]}');
SELECT orchestration.register_agent(2, '{"name": "retrier", "type": "RULE", "function": "mallory.retrier", "capabilities": [{"name": "go"}]}');
SELECT orchestration.create_workflow(2, '{"name": "quitter", "nodes": [{"id": "a", "agent": "quitter", "action": "go"}, {"id": "b", "agent": "quitter", "action": "go", "depends_on": ["a"]}]}');
SELECT orchestration.create_workflow(2, '{"name": "boom", "nodes": [{"id": "a", "agent": "boom", "action": "go"}]}');
SELECT orchestration.create_workflow(2, '{"name": "retrier", "nodes": [{"id": "a", "agent": "retrier", "action": "go", "inputs": {"run_id": "{{ context.run_id }}"}}]}');
SQL
run=$(as mallory "SELECT orchestration.start_workflow(2, 'quitter')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->>'error'") $(q "SELECT string_agg(node_key || '=' || status, ' ' ORDER BY node_key) FROM orchestration.workflow_run_nodes WHERE run_id = $run")" \
   "cancelled by mallory: quits a=CANCELLED b=CANCELLED" "a RULE function alone in its run cancels it"
failed=$(as mallory "SELECT orchestration.start_workflow(2, 'boom')")
is "$(q "SELECT orchestration.wait_for_run($failed, '60 s')->>'status'")" "FAILED" "a run that fails"
run=$(as mallory "SELECT orchestration.start_workflow(2, 'retrier', jsonb_build_object('run_id', $failed))")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->>'status'")" "SUCCESS" "a RULE function retries it"
wait_for 30 "SELECT count(*) = 2 FROM orchestration.agent_runs WHERE run_id = $failed"
ok $? "and its node runs again"

# Announcing a run to the scheduler (done before waiting for its lock) needs the right to
# change it: another project's runs are not held up by a transaction that tried.
( echo "BEGIN; DO \$\$ BEGIN FOR i IN 1..64 LOOP BEGIN PERFORM orchestration.cancel_run(i); EXCEPTION WHEN OTHERS THEN NULL; END; END LOOP; END \$\$; SELECT pg_sleep(6); ROLLBACK;" |
  psql -X -q -U mallory >/dev/null 2>&1 ) &
holder=$!
sleep 1
runs_past "$holder" "a transaction holds failed cancel_run calls on many run ids"

# A run a NATS message starts belongs to whoever last defined the workflow, also for four eyes.
as mallory "SELECT orchestration.update_workflow(w.id, orchestration.get_workflow(w.id) || '{\"trigger\": {\"type\": \"nats\", \"subject\": \"jobs.mallory\"}}') FROM orchestration.workflows w WHERE w.project_id = 2 AND w.name = 'gated'" >/dev/null
q "UPDATE orchestration.workflows SET created_by = 'postgres' WHERE project_id = 2 AND name = 'gated'" >/dev/null
nats_run=$(q "SELECT (orchestration.start_workflows_from_nats('jobs.mallory', 'jobs.mallory', '{}')->'run_ids'->>0)")
is "$(q "SELECT started_by || ' ' || started_login FROM orchestration.workflow_runs WHERE id = $nats_run")" "mallory mallory" \
   "a NATS-started run counts as started by the role that last changed the workflow, not by its creator"
q "SELECT orchestration.cancel_run($nats_run)" >/dev/null
q "SELECT orchestration.cancel_run($gated)" >/dev/null

# --- 4. Approvals and secrets --------------------------------------------------------------
value="SeCrEt-$(date +%s%N)"
secret_call() { echo "SELECT orchestration.set_secret($2);" | psql -X -q -At -U "$1" -v "v=$value" 2>&1; }
err=$(secret_call alice "1, NULL, :'v'")
err2=$(secret_call alice "1, 'bad name!', :'v'")
err3=$(secret_call mallory "1, 'TOKEN', :'v'")
err4=$(secret_call alice "1, 'TOKEN', repeat(:'v', 10000)")
printf '%s\n' "$err" "$err2" "$err3" "$err4" | sed 's/^/# /'
case "$err$err2$err3$err4" in *"$value"*) leaked=1 ;; *) leaked=0 ;; esac
is "$leaked" "0" "no error of set_secret shows the value (NULL name, bad name, other project, too long)"
is "$(echo "$err" | head -1)" "ERROR:  secret name must not be NULL" "a NULL name is refused with a plain error"
sleep 0.5
grep -q -- "$value" "$DATA"/log/*.log 2>/dev/null; is "$?" "1" "the server log does not hold the value"

# An approval lets run what the approver was asked about. The agent's function replaced, or
# the agent updated, after the approval (here in the approval's own transaction, so that no
# attempt can come between) is asked about again, and the changed code does not run on the
# old approval.
q "CREATE TABLE public.pin_marks (body text); GRANT INSERT, SELECT ON public.pin_marks TO PUBLIC"
pinned_body() { echo "CREATE OR REPLACE FUNCTION public.pinned(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$ BEGIN INSERT INTO public.pin_marks VALUES ('$1'); RETURN '{\"body\": \"$1\"}'; END \$\$"; }
q "$(pinned_body v1); GRANT EXECUTE ON FUNCTION public.pinned(jsonb) TO PUBLIC"
as alice "SELECT orchestration.register_agent(1, '{\"name\": \"pinned\", \"type\": \"RULE\", \"function\": \"public.pinned\", \"risk_level\": \"APPROVAL_REQUIRED\", \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null
as alice "SELECT orchestration.create_workflow(1, '{\"name\": \"pinned\", \"nodes\": [{\"id\": \"p\", \"agent\": \"pinned\", \"action\": \"go\"}]}')" >/dev/null
pending_of() { q "SELECT approval_id FROM orchestration.pending_approvals WHERE run_id = $1"; }
run=$(as alice "SELECT orchestration.start_workflow(1, 'pinned')")
wait_for 30 "SELECT count(*) = 1 FROM orchestration.pending_approvals WHERE run_id = $run" >/dev/null
first=$(pending_of "$run")
q "BEGIN; SELECT orchestration.approve($first); $(pinned_body v2); COMMIT" >/dev/null
ok "$(wait_for 30 "SELECT count(*) = 1 FROM orchestration.pending_approvals WHERE run_id = $run AND approval_id <> $first"; echo $?)" \
   "a function replaced after its node was approved: the node is asked about again"
is "$(q "SELECT count(*) FROM public.pin_marks")" "0" "and the replaced function did not run on the old approval"
is "$(q "SELECT payload->'data'->>'reason' FROM orchestration.events WHERE run_id = $run AND type = 'orchestration.approval.requested' ORDER BY id DESC LIMIT 1")" \
   "the agent or its function changed after approval $first" "the new request says why"
second=$(pending_of "$run")
as alice "SELECT orchestration.approve($second)" >/dev/null
is "$(q "SELECT orchestration.wait_for_run($run, '30 s')->'nodes'->0->>'output'")" '{"body": "v2"}' "approved again, the node runs what was approved"
run=$(as alice "SELECT orchestration.start_workflow(1, 'pinned')")
wait_for 30 "SELECT count(*) = 1 FROM orchestration.pending_approvals WHERE run_id = $run" >/dev/null
first=$(pending_of "$run")
agent=$(q "SELECT id FROM orchestration.agents WHERE project_id = 1 AND name = 'pinned'")
as alice "BEGIN; SELECT orchestration.approve($first); SELECT orchestration.update_agent($agent, '{\"name\": \"pinned\", \"type\": \"RULE\", \"function\": \"public.pinned\", \"risk_level\": \"APPROVAL_REQUIRED\", \"description\": \"changed\", \"capabilities\": [{\"name\": \"go\"}]}'); COMMIT" >/dev/null
ok "$(wait_for 30 "SELECT count(*) = 1 FROM orchestration.pending_approvals WHERE run_id = $run AND approval_id <> $first"; echo $?)" \
   "an agent updated after its node was approved: asked about again"
is "$(q "SELECT count(*) FROM public.pin_marks")" "1" "and it did not run on the old approval"

# Any login role can LISTEN: by default a notification says only that events were written.
( psql -X -U nobody -c "LISTEN orchestration_events" -c "SELECT pg_sleep(3)" > /tmp/orch_listen.$$ 2>&1 ) &
listener=$!
sleep 1
as alice "SELECT orchestration.start_workflow(1, 'hello')" >/dev/null
wait $listener
grep -q 'Asynchronous notification "orchestration_events"' /tmp/orch_listen.$$; ok $? "a role without any orchestration role still hears that something happened"
grep -q 'payload' /tmp/orch_listen.$$; is "$?" "1" "but the notification carries no payload (no event id, type or run id)"
rm -f /tmp/orch_listen.$$

# --- 2. Poison pills fail their own node, never the engine ---------------------------------
# Inputs nested beyond any sane depth are refused with an error, not a crashed server.
deep=$(python3 -c 'print("[" * 10000 + "]" * 10000)')
deep_schema=$(python3 -c 'print("{\"not\":" * 10000 + "true" + "}" * 10000)')
err2=$(echo "SELECT orchestration.register_agent(2, jsonb_build_object('name', 'deep', 'type', 'RULE', 'function', 'public.echo', 'capabilities', jsonb_build_array(jsonb_build_object('name', 'go', 'input_schema', :'d'::jsonb))))" |
       psql -X -q -At -U mallory -v "d=$deep_schema" 2>&1)
q "GRANT orchestration_operator TO nobody" >/dev/null
err=$(echo "SELECT orchestration.json_schema_valid('{\"type\": \"array\"}', :'d')" | psql -X -q -At -U nobody -v "d=$deep" 2>&1)
q "REVOKE orchestration_operator FROM nobody" >/dev/null
is "$(echo "$err" | head -1)" "ERROR:  JSON nested deeper than 512 levels (at byte 513)" "json_schema_valid on a 10,000-deep document is an error, not a crash"
is "$(echo "$err2" | head -1 | cut -c1-40)" "ERROR:  JSON nested deeper than 512 leve" "register_agent with a 10,000-deep schema is an error, not a crash"
is "$(project1_runs)" "SUCCESS" "the server is up and runs workflows"

if docker version >/dev/null 2>&1; then
  q "ALTER SYSTEM SET orchestration.allowed_images = 'orchestration/busybox:*'" >/dev/null
  q "SELECT pg_reload_conf()" >/dev/null
  sleep 1
  before=$(scheduler_pid)
  container_agent() {  # container_agent NAME SHELL-COMMAND [SECRETS-JSON [OUTPUT-SCHEMA-JSON]]
    q "SELECT orchestration.register_agent(2, jsonb_build_object('name', '$1', 'type', 'SCRIPT', 'image', 'orchestration/busybox:test',
         'command', jsonb_build_array('sh', '-c', \$cmd\$$2\$cmd\$), 'secrets', '${3:-[]}'::jsonb,
         'capabilities', jsonb_build_array(jsonb_build_object('name', 'go', 'output_schema', '${4:-true}'::jsonb))))" >/dev/null
    q "SELECT orchestration.create_workflow(2, '{\"name\": \"$1\", \"nodes\": [{\"id\": \"c\", \"agent\": \"$1\", \"action\": \"go\"}]}')" >/dev/null
  }
  # The scheduler connects as a superuser: an operator in a schema a tenant can write to
  # must never be what its statements call.
  q "GRANT CREATE ON SCHEMA public TO mallory" >/dev/null
  psql -X -q -U mallory >/dev/null 2>&1 <<'SQL'
CREATE FUNCTION public.rs_eq(a orchestration.run_status, b orchestration.run_status) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN a::text OPERATOR(pg_catalog.=) b::text;
END $$;
CREATE OPERATOR public.= (LEFTARG = orchestration.run_status, RIGHTARG = orchestration.run_status, FUNCTION = public.rs_eq);
SQL
  container_agent nul 'cat >/dev/null; printf "{\"a\":\"\\u0000\"}"'
  container_agent deep 'cat >/dev/null; head -c 100000 /dev/zero | tr "\0" "["; head -c 100000 /dev/zero | tr "\0" "]"'
  container_agent noisy 'cat >/dev/null; printf "bad\000bytes \377\376 here\n" >&2; echo "{\"ok\": true}"'
  q "SELECT orchestration.set_secret(2, 'API_TOKEN', 'tok-$value')" >/dev/null
  container_agent leaky 'cat >/dev/null; env >&2; echo "{\"token\": \"$API_TOKEN\"}"' '["API_TOKEN"]'
  # The same output, refused by its output schema: the output kept on the failed attempt
  # (for whoever debugs it) is masked too.
  container_agent badleak 'cat >/dev/null; echo "{\"token\": \"$API_TOKEN\"}"' '["API_TOKEN"]' '{"required": ["missing"]}'
  declare -A runs
  for w in nul deep noisy leaky badleak; do runs[$w]=$(q "SELECT orchestration.start_workflow(2, '$w')"); done
  other=$(project1_runs)
  for w in nul deep noisy leaky badleak; do q "SELECT orchestration.wait_for_run(${runs[$w]}, '120 s')" >/dev/null; done
  node() { q "SELECT $2 FROM orchestration.workflow_run_nodes WHERE run_id = ${runs[$1]}"; }
  is "$(node nul status)|$(node nul error)" \
     'FAILED|its output cannot be stored: string at /a contains the character U+0000, which PostgreSQL'"'"'s jsonb cannot store' \
     'stdout {"a":"\u0000"} fails its node, saying why'
  is "$(node deep status)|$(node deep "left(error, 95)")" \
     'FAILED|its output is not a JSON document we can take: JSON nested deeper than 512 levels (at byte 513)' \
     "stdout nested 100,000 deep fails its node, saying why"
  is "$(node noisy status)" "SUCCESS" "NUL and invalid UTF-8 on stderr do not stop the result from being recorded"
  is "$(q "SELECT log_tail FROM orchestration.agent_runs WHERE run_id = ${runs[noisy]}")" "$(printf 'bad\xef\xbf\xbdbytes \xef\xbf\xbd\xef\xbf\xbd here\n')" \
     "the stored log tail has them replaced by U+FFFD"
  is "$other" "SUCCESS" "another project's run finished meanwhile"
  is "$(scheduler_pid)" "$before" "the scheduler never restarted"
  is "$(superuser mallory)" "f" "an operator of a tenant's in the public schema is not what the scheduler's statements call"
  q "DROP OPERATOR public.= (orchestration.run_status, orchestration.run_status); REVOKE CREATE ON SCHEMA public FROM mallory" >/dev/null

  # A run locked by someone's open transaction holds up its own container result only.
  container_agent napper 'cat >/dev/null; sleep 2; echo "{}"'
  nap=$(q "SELECT orchestration.start_workflow(2, 'napper')")
  wait_for 30 "SELECT status = 'RUNNING' FROM orchestration.workflow_run_nodes WHERE run_id = $nap"
  ( echo "BEGIN; SELECT orchestration.cancel_run($nap); SELECT pg_sleep(8); ROLLBACK;" | psql -X -q -U mallory >/dev/null 2>&1 ) &
  holder=$!
  sleep 3  # the container has finished; its result waits for the lock
  runs_past "$holder" "a run with a finished container is locked"
  is "$(q "SELECT orchestration.wait_for_run($nap, '30 s')->>'status'")" "SUCCESS" "the locked run's result is recorded once the lock is gone"
  # The same when what someone holds is the container's agent: update_agent inside a
  # savepoint of an open transaction keeps the agent's row locked, which recording an
  # attempt of that agent needs. Another project's container run still goes through.
  q "SELECT orchestration.register_agent(1, '{\"name\": \"quick\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"cat >/dev/null; echo {}\"], \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null
  q "SELECT orchestration.create_workflow(1, '{\"name\": \"quick\", \"nodes\": [{\"id\": \"q\", \"agent\": \"quick\", \"action\": \"go\"}]}')" >/dev/null
  napper=$(q "SELECT id FROM orchestration.agents WHERE project_id = 2 AND name = 'napper'")
  nap=$(q "SELECT orchestration.start_workflow(2, 'napper')")
  wait_for 30 "SELECT status = 'RUNNING' FROM orchestration.workflow_run_nodes WHERE run_id = $nap" >/dev/null
  ( echo "BEGIN; SAVEPOINT s; SELECT orchestration.update_agent($napper, orchestration.get_agent($napper)); RELEASE s; SELECT pg_sleep(10); ROLLBACK;" |
      psql -X -q -U mallory >/dev/null 2>&1 ) &
  holder=$!
  sleep 3  # the napper's container has finished; its result waits for the agent's row
  quick=$(as alice "SELECT orchestration.start_workflow(1, 'quick')")
  is "$(q "SELECT orchestration.wait_for_run($quick, '60 s')->>'status'")" "SUCCESS" \
     "another project's container run finishes while a transaction holds a finished container's agent"
  wait "$holder"
  holder_end=$(q "SELECT clock_timestamp()")
  is "$(q "SELECT finished_at < '$holder_end' FROM orchestration.workflow_runs WHERE id = $quick")" "t" \
     "and before that transaction ended: the scheduler did not wait for it"
  is "$(q "SELECT orchestration.wait_for_run($nap, '30 s')->>'status'")" "SUCCESS" "the held agent's result is recorded afterwards"
  is "$(node leaky "output->>'token'")" "***" "a secret a container prints to stdout is masked in its output"
  is "$(q "SELECT status || ' ' || (output_json->>'token') FROM orchestration.agent_runs WHERE run_id = ${runs[badleak]}")" "FAILED ***" \
     "and in an output its schema refused, kept on the failed attempt"
  stored=$(q "SELECT concat_ws(' ', (SELECT string_agg(coalesce(log_tail, '') || coalesce(output_json::text, '') || coalesce(error, ''), ' ') FROM orchestration.agent_runs),
                                    (SELECT string_agg(payload::text, ' ') FROM orchestration.events))")
  case "$stored" in *"tok-$value"*) leaked=1 ;; *) leaked=0 ;; esac
  is "$leaked" "0" "no stored log tail, output, error or event holds the secret the container printed"
  case "$(q "SELECT log_tail FROM orchestration.agent_runs WHERE run_id = ${runs[leaky]}")" in *"API_TOKEN=***"*) masked=0 ;; *) masked=1 ;; esac
  is "$masked" "0" "the log tail shows where it was (API_TOKEN=***)"
  # Also in the output of a container the scheduler adopts after a crash.
  container_agent slowleak 'cat >/dev/null; env >&2; sleep 3; echo "{\"token\": \"$API_TOKEN\"}"' '["API_TOKEN"]'
  slow=$(q "SELECT orchestration.start_workflow(2, 'slowleak')")
  wait_for 30 "SELECT status = 'RUNNING' FROM orchestration.workflow_run_nodes WHERE run_id = $slow" >/dev/null
  kill -9 "$(scheduler_pid)"
  sleep 2
  wait_for 60 "SELECT true" >/dev/null  # the server restarts after the crash
  is "$(q "SELECT orchestration.wait_for_run($slow, '120 s')->'nodes'->0->'output'->>'token'")" "***" \
     "a container adopted after a crash has its secrets masked in its output"
  case "$(q "SELECT log_tail FROM orchestration.agent_runs WHERE run_id = $slow")" in *"tok-$value"*) masked=1 ;; *"API_TOKEN=***"*) masked=0 ;; *) masked=2 ;; esac
  is "$masked" "0" "and in its log tail"
else
  echo "# no Docker engine: container poison pills not tried"
fi

# A result that passes every check and still cannot be written (a trigger of the test's
# own on agent_runs refuses it, standing in for a poison not found yet) fails its own node
# only: the pass that met it is rolled back, and the next records each attempt alone. The
# node claimed before it keeps its success; the one claimed after it is not started in
# that pass, as after any failure of its run (the first pass, rolled back, had run it).
q "CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN IF NEW.output_json ? 'poison' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END \$\$"
q "CREATE TRIGGER refuse_poison BEFORE INSERT ON orchestration.agent_runs FOR EACH ROW EXECUTE FUNCTION public.refuse_poison()"
as alice "SELECT orchestration.create_workflow(1, '{\"name\": \"poisoned\", \"nodes\": [{\"id\": \"a\", \"agent\": \"echo\", \"action\": \"say\", \"inputs\": {\"n\": 1}}, {\"id\": \"b\", \"agent\": \"echo\", \"action\": \"say\", \"inputs\": {\"poison\": true}}, {\"id\": \"c\", \"agent\": \"echo\", \"action\": \"say\", \"inputs\": {\"n\": 3}}]}')" >/dev/null
workers_before=$(q "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type LIKE 'pg_orchestration%' AND datname = current_database()")
run=$(as alice "SELECT orchestration.start_workflow(1, 'poisoned')")
q "SELECT orchestration.wait_for_run($run, '60 s')" >/dev/null
is "$(q "SELECT string_agg(node_key || ' ' || status || coalesce(': ' || error, ''), ', ' ORDER BY node_key) FROM orchestration.workflow_run_nodes WHERE run_id = $run")" \
   "a SUCCESS, b FAILED: its result could not be stored: refused by the test, c SKIPPED" \
   "a result that cannot be written fails its own node; the node claimed before it is recorded, the one after it skipped as the run failed"
is "$(q "SELECT string_agg(node_key, ' ' ORDER BY id) FROM orchestration.agent_runs WHERE run_id = $run")" "a b" \
   "no attempt of the skipped node was kept"
is "$(q "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type LIKE 'pg_orchestration%' AND datname = current_database()")" \
   "$workers_before" "no worker restarted"
q "DROP TRIGGER refuse_poison ON orchestration.agent_runs; DROP FUNCTION public.refuse_poison()"

# --- 3. One tenant's slow code does not stall the others --------------------------------------
# PL/pgSQL can catch the statement timeout: a function that does runs on after it. Its
# RULE worker is stopped by the scheduler and the attempt recorded as timed out, whatever
# the function does; nothing it wrote is kept.
rule_workers() { q "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database()"; }
psql -X -q -U mallory >/dev/null 2>&1 <<'SQL'
CREATE TABLE mallory.marks (at timestamptz);
CREATE FUNCTION mallory.stubborn(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO mallory.marks VALUES (clock_timestamp());
  LOOP
    BEGIN
      PERFORM pg_sleep(0.1);
    EXCEPTION WHEN query_canceled THEN
      INSERT INTO mallory.marks VALUES (clock_timestamp());  -- and on
    END;
  END LOOP;
END $$;
SELECT orchestration.register_agent(2, '{"name": "stubborn", "type": "RULE", "function": "mallory.stubborn", "limits": {"timeout_seconds": 1}, "capabilities": [{"name": "go"}]}');
SELECT orchestration.register_agent(2, '{"name": "stubborn3", "type": "RULE", "function": "mallory.stubborn", "limits": {"timeout_seconds": 3}, "capabilities": [{"name": "go"}]}');
SELECT orchestration.create_workflow(2, '{"name": "stubborn", "nodes": [{"id": "s", "agent": "stubborn", "action": "go"}]}');
SELECT orchestration.create_workflow(2, '{"name": "hang", "nodes": [{"id": "h", "agent": "stubborn3", "action": "go"}]}');
SQL
workers_before=$(rule_workers)
run=$(as mallory "SELECT orchestration.start_workflow(2, 'stubborn')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->>'status'")" "FAILED" \
   "a RULE function that catches query_canceled does not outlive its timeout"
is "$(q "SELECT status || ': ' || error FROM orchestration.agent_runs WHERE run_id = $run")" \
   "FAILED: timed out after 1 s and went on; the RULE worker running it was stopped" \
   "its one attempt is recorded as timed out, saying what happened"
is "$(q "SELECT count(*) FROM mallory.marks")" "0" "nothing it wrote was kept (its transaction was rolled back)"
is "$(q "SELECT extract(epoch FROM finished_at - started_at) < 10 FROM orchestration.agent_runs WHERE run_id = $run")" "t" \
   "it was stopped within seconds of its timeout"
ok "$(wait_for 30 "SELECT count(*) = $(echo "$workers_before" | tr ',' '\n' | wc -l) FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database()"; echo $?)" \
   "the stopped worker is replaced"
[ "$(rule_workers)" != "$workers_before" ]; ok $? "by a new process ($workers_before -> $(rule_workers))"

# Four hung attempts of one project hold at most rule_workers - 1 RULE workers (two of the
# default three): another project's runs go on meanwhile, and each hung attempt is stopped
# in its turn.
hung=()
for i in 1 2 3 4; do hung+=("$(as mallory "SELECT orchestration.start_workflow(2, 'hang')")"); done
wait_for 30 "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database() AND wait_event = 'PgSleep'" >/dev/null
other=$(as alice "SELECT orchestration.start_workflow(1, 'hello')")
is "$(q "SELECT orchestration.wait_for_run($other, '60 s')->>'status'")" "SUCCESS" "another project's run finishes while four RULE attempts hang"
hung_list=$(IFS=,; echo "${hung[*]}")
is "$(q "SELECT count(*) >= 3 FROM orchestration.workflow_runs WHERE id IN ($hung_list) AND finished_at IS NULL")" "t" \
   "while at least three of the four were still waiting or hanging"
ok "$(wait_for 90 "SELECT count(*) = 4 FROM orchestration.workflow_runs WHERE id IN ($hung_list) AND status = 'FAILED'"; echo $?)" \
   "all four are stopped and recorded as failed"
is "$(q "SELECT count(*) FROM orchestration.agent_runs WHERE run_id IN ($hung_list) AND error LIKE 'timed out after 3 s and went on%'")" "4" \
   "each with one attempt, timed out"
is "$(project1_runs)" "SUCCESS" "and RULE nodes run as before"

# Nodes of a run someone holds (here mallory's own open transaction, which announced the
# run with cancel_run) are passed over however many there are: 210 of them, more than one
# claim takes, do not hide another project's node behind them.
psql -X -q -U mallory >/dev/null 2>&1 <<'SQL'
CREATE FUNCTION mallory.echo(input jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT input $$;
SELECT orchestration.register_agent(2, '{"name": "echo", "type": "RULE", "function": "mallory.echo", "capabilities": [{"name": "say"}]}');
SELECT orchestration.create_workflow(2, jsonb_build_object('name', 'many', 'nodes',
  (SELECT jsonb_agg(jsonb_build_object('id', 'n' || i, 'agent', 'echo', 'action', 'say')) FROM generate_series(1, 210) i)));
SELECT orchestration.create_workflow(2, '{"name": "hang1", "nodes": [{"id": "h", "agent": "stubborn", "action": "go"}]}');
SQL
# While a RULE worker of mallory's hangs, her 210 nodes start to run in the other one she
# may hold, or wait; she then holds their run in an open transaction (which waits for that
# worker's claim to end, and then holds every claim off it), and the hang is stopped.
hang=$(as mallory "SELECT orchestration.start_workflow(2, 'hang1')")
wait_for 30 "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database() AND wait_event = 'PgSleep'" >/dev/null
many=$(as mallory "SELECT orchestration.start_workflow(2, 'many')")
( echo "BEGIN; SELECT orchestration.cancel_run($many); SELECT pg_sleep(15); ROLLBACK;" | psql -X -q -U mallory >/dev/null 2>&1 ) &
holder=$!
wait_for 30 "SELECT status = 'FAILED' FROM orchestration.workflow_runs WHERE id = $hang" >/dev/null
runs_past "$holder" "a transaction holds a run of 210 runnable nodes"
is "$(q "SELECT orchestration.wait_for_run($many, '60 s')->>'status'")" "SUCCESS" "and those run once it has ended"

# A stopped attempt whose record has to wait does not keep the watchdog from stopping the
# next hang in that worker.
q "CREATE FUNCTION public.buggy(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN LOOP BEGIN PERFORM pg_sleep(0.1); EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END \$\$"
q "GRANT EXECUTE ON FUNCTION public.buggy(jsonb) TO PUBLIC"
as alice "SELECT orchestration.register_agent(1, '{\"name\": \"buggy\", \"type\": \"RULE\", \"function\": \"public.buggy\", \"limits\": {\"timeout_seconds\": 2}, \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null
as alice "SELECT orchestration.create_workflow(1, '{\"name\": \"buggy\", \"nodes\": [{\"id\": \"b\", \"agent\": \"buggy\", \"action\": \"go\"}]}')" >/dev/null
# Two of mallory's runs hang one after the other and are stopped, while her open
# transaction holds their agent's row (update_agent inside a savepoint), so neither record
# can be written: each RULE worker has a stopped attempt waiting. Alice's hang is stopped
# all the same.
stubborn=$(q "SELECT id FROM orchestration.agents WHERE project_id = 2 AND name = 'stubborn'")
( echo "BEGIN; SAVEPOINT s; SELECT orchestration.update_agent($stubborn, orchestration.get_agent($stubborn)); RELEASE s; SELECT pg_sleep(30); ROLLBACK;" |
    psql -X -q -U mallory >/dev/null 2>&1 ) &
holder=$!
sleep 1
hang=$(as mallory "SELECT orchestration.start_workflow(2, 'hang1')")
hang2=$(as mallory "SELECT orchestration.start_workflow(2, 'hang1')")
sleep 8  # both are stopped by now; their records wait for her transaction
buggy=$(as alice "SELECT orchestration.start_workflow(1, 'buggy')")
is "$(q "SELECT orchestration.wait_for_run($buggy, '20 s')->>'status'")" "FAILED" \
   "another project's hang is stopped while stopped attempts wait to be recorded"
is "$(q "SELECT error FROM orchestration.agent_runs WHERE run_id = $buggy")" \
   "timed out after 2 s and went on; the RULE worker running it was stopped" "and recorded as timed out"
wait "$holder"
is "$(q "SELECT string_agg(orchestration.wait_for_run(id, '30 s')->>'status', ',') FROM unnest(ARRAY[$hang, $hang2]) id")" "FAILED,FAILED" \
   "the held ones are recorded once the transaction is gone"

# A node that ran past its timeout runs alone in its next transaction: the nodes claimed
# with it are not lost with it again (they end SUCCESS, not skipped by its failure).
as mallory "SELECT orchestration.create_workflow(2, '{\"name\": \"trio\", \"nodes\": [{\"id\": \"a\", \"agent\": \"echo\", \"action\": \"say\"}, {\"id\": \"s\", \"agent\": \"stubborn\", \"action\": \"go\", \"retries\": 1, \"retry_backoff_seconds\": 0.1}, {\"id\": \"z\", \"agent\": \"echo\", \"action\": \"say\"}]}')" >/dev/null
trio=$(as mallory "SELECT orchestration.start_workflow(2, 'trio')")
q "SELECT orchestration.wait_for_run($trio, '90 s')" >/dev/null
is "$(q "SELECT string_agg(node_key || ' ' || status || ' ' || attempt, ', ' ORDER BY node_key) FROM orchestration.workflow_run_nodes WHERE run_id = $trio")" \
   "a SUCCESS 1, s FAILED 2, z SUCCESS 1" \
   "the nodes claimed with an attempt that was stopped end as they would have (the stopped one after its retry)"

# --- 2b. A node that brought its worker down twice is failed ---------------------------------
q "CREATE FUNCTION public.slow(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT pg_sleep(60); SELECT '{}'::jsonb \$\$"
as alice "SELECT orchestration.register_agent(1, '{\"name\": \"slow\", \"type\": \"RULE\", \"function\": \"public.slow\", \"limits\": {\"timeout_seconds\": 300}, \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null 2>&1 ||
  q "SELECT orchestration.register_agent(1, '{\"name\": \"slow\", \"type\": \"RULE\", \"function\": \"public.slow\", \"limits\": {\"timeout_seconds\": 300}, \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"poison\", \"nodes\": [{\"id\": \"p\", \"agent\": \"slow\", \"action\": \"go\"}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'poison')")
for crash in 1 2; do
  wait_for 60 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database() AND wait_event = 'PgSleep'"
  ok $? "crash $crash: a RULE worker is inside the node's function"
  kill -9 "$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database() AND wait_event = 'PgSleep'")"
  sleep 2
  wait_for 60 "SELECT true" >/dev/null
done
wait_for 60 "SELECT status = 'FAILED' FROM orchestration.workflow_run_nodes WHERE run_id = $run"
ok $? "after the second crash the node is failed instead of run a third time"
is "$(q "SELECT error FROM orchestration.workflow_run_nodes WHERE run_id = $run")" \
   "the worker process running this node died 2 times while working on it (attempt 1); it is failed so that it cannot bring the worker down again. The server log has the cause" \
   "its error says so"
is "$(project1_runs)" "SUCCESS" "and the workers run other work again"

q "ALTER SYSTEM RESET orchestration.allowed_images" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
done_testing
