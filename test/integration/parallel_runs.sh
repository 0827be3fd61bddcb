#!/usr/bin/env bash
# Several RULE workers run the nodes of one run at once: a claim shares the run's row with
# other claims (FOR KEY SHARE) and locks only its nodes, and the writers of a run take
# turns (FOR NO KEY UPDATE) only for what they share: the dependents' counters and the
# run's end. What a user must see: every node run once, the run ended by whichever worker
# finished last, a failure in one worker's nodes ending the run while another worker holds
# nodes of it (which it finishes and records), a cancel waiting for both, and never a
# deadlock.
source "$(dirname "$0")/lib.bash"
reset_database

# Each node returns the process that ran it, after 20 ms: the first worker is still busy
# with its claim when the second one claims.
q "CREATE FUNCTION public.whoami(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN
     PERFORM pg_sleep(0.02);
     IF input->>'fail' = 'yes' THEN RAISE EXCEPTION 'node % refuses', input->>'n'; END IF;
     RETURN jsonb_build_object('pid', pg_backend_pid());
   END \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"whoami\", \"type\": \"RULE\", \"function\": \"public.whoami\", \"capabilities\": [{\"name\": \"run\"}]}')" >/dev/null
# wide NAME N FAILING [RETRIES]: N independent nodes (node n<FAILING> fails) and "last",
# which depends on all of them; RETRIES is an SQL expression of the node's number i.
wide() {
  q "SELECT orchestration.create_workflow(1, jsonb_build_object('name', '$1', 'nodes',
       (SELECT jsonb_agg(x) FROM (
          SELECT jsonb_build_object('id', 'n' || i, 'agent', 'whoami', 'action', 'run', 'retries', ${4:-0},
                                    'inputs', jsonb_build_object('n', i, 'fail', CASE WHEN i = $3 THEN 'yes' ELSE 'no' END)) x
          FROM generate_series(1, $2) i
          UNION ALL
          SELECT jsonb_build_object('id', 'last', 'agent', 'whoami', 'action', 'run',
                                    'depends_on', (SELECT jsonb_agg('n' || i) FROM generate_series(1, $2) i))) s)))" >/dev/null
}
log_lines_before=$(wc -l < "$DATA/log/postgresql.log")
max_nodes=$(q "SHOW orchestration.max_nodes_per_transaction")
is "$(q "SHOW orchestration.rule_workers")" "3" "three RULE workers by default (a project may hold two)"

# More nodes than one claim takes ($max_nodes): a second worker claims beside the first.
n=$((max_nodes * 2))
wide wide "$n" 0
run=$(q "SELECT orchestration.start_workflow(1, 'wide')")
is "$(q "SELECT orchestration.wait_for_run($run, '120 s')->>'status'")" "SUCCESS" "a run of $n + 1 nodes succeeds"
is "$(q "SELECT count(DISTINCT output->>'pid') FROM orchestration.workflow_run_nodes WHERE run_id = $run AND node_key <> 'last'")" "2" \
   "its nodes ran in two RULE workers"
is "$(q "SELECT count(*) || ' ' || count(DISTINCT run_node_id) FROM orchestration.agent_runs WHERE run_id = $run")" "$((n + 1)) $((n + 1))" \
   "each node ran once"
is "$(q "SELECT status || ' ' || pending_deps FROM orchestration.workflow_run_nodes WHERE run_id = $run AND node_key = 'last'")" "SUCCESS 0" \
   "the node depending on all of them ran after the last of them, its counter taken down by both workers"
is "$(q "SELECT count(*) FILTER (WHERE type = 'orchestration.run.succeeded') || ' ' ||
               (max(id) FILTER (WHERE type = 'orchestration.run.succeeded') = max(id))
        FROM orchestration.events WHERE run_id = $run")" "1 true" \
   "one run.succeeded event, the run's last"

# A node fails for good in the middle of the first worker's claim (n1..n$max_nodes, in key
# order) while the second worker holds nodes of the same run: the run fails at once; the
# first worker does not run the nodes it claimed after the failing one; the second
# worker's nodes, claimed before the failure and passed over by it, finish and are
# recorded; nothing stays PENDING.
failing=$((max_nodes / 2))
wide failing "$n" "$failing"
run=$(q "SELECT orchestration.start_workflow(1, 'failing')")
is "$(q "SELECT orchestration.wait_for_run($run, '120 s')->>'status'")" "FAILED" "a run whose node fails, fails"
ok "$(wait_for 30 "SELECT count(*) = 0 FROM orchestration.workflow_run_nodes WHERE run_id = $run AND status NOT IN ('SUCCESS', 'FAILED', 'SKIPPED')"; echo $?)" \
   "and every one of its nodes ends (none left PENDING by a worker holding it)"
is "$(q "SELECT count(DISTINCT output->>'pid') FROM orchestration.workflow_run_nodes WHERE run_id = $run AND status = 'SUCCESS'")" "2" \
   "nodes of both workers succeeded (the second worker's ran while the run failed)"
is "$(q "SELECT count(*) FROM orchestration.workflow_run_nodes n WHERE n.run_id = $run AND n.status = 'SKIPPED'
          AND n.skip_reason = 'run failed' AND CASE WHEN n.node_key <> 'last' THEN substr(n.node_key, 2)::int END BETWEEN $((failing + 1)) AND $max_nodes
          AND NOT EXISTS (SELECT 1 FROM orchestration.agent_runs a WHERE a.run_node_id = n.id)")" "$((max_nodes - failing))" \
   "the nodes the first worker claimed after the failing one were skipped, never run"
is "$(q "SELECT status || ' ' || skip_reason FROM orchestration.workflow_run_nodes WHERE run_id = $run AND node_key = 'last'")" "SKIPPED run failed" \
   "the dependent of the failed node is skipped as a failure skips it"
is "$(q "SELECT count(*) - count(DISTINCT run_node_id) FROM orchestration.agent_runs WHERE run_id = $run")" "0" "no node ran twice"

# The same with retries: n1 fails for good, and every fiftieth node fails with retries
# left, in both workers' claims. A node that fails after its run failed is not retried.
q "CREATE OR REPLACE FUNCTION public.whoami(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN
     PERFORM pg_sleep(0.02);
     IF (input->>'n')::int % 50 = 1 THEN RAISE EXCEPTION 'node % refuses', input->>'n'; END IF;
     RETURN jsonb_build_object('pid', pg_backend_pid());
   END \$\$"
wide retrying "$n" 0 "CASE WHEN i = 1 THEN 0 ELSE 3 END"
run=$(q "SELECT orchestration.start_workflow(1, 'retrying')")
is "$(q "SELECT orchestration.wait_for_run($run, '120 s')->>'status'")" "FAILED" "a run whose n1 fails for good fails"
ok "$(wait_for 30 "SELECT count(*) = 0 FROM orchestration.workflow_run_nodes WHERE run_id = $run AND status NOT IN ('SUCCESS', 'FAILED', 'SKIPPED')"; echo $?)" \
   "and no node of it waits for a retry that would never come"

# cancel_run while two workers hold nodes of the run waits for them, then cancels the rest.
q "CREATE OR REPLACE FUNCTION public.whoami(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN PERFORM pg_sleep(0.02); RETURN jsonb_build_object('pid', pg_backend_pid()); END \$\$"
wide long $((max_nodes * 6)) 0
run=$(q "SELECT orchestration.start_workflow(1, 'long')")
wait_for 60 "SELECT count(*) >= 2 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database() AND wait_event = 'PgSleep'" >/dev/null
q "SELECT orchestration.cancel_run($run, 'enough')" >/dev/null
is "$(q "SELECT status FROM orchestration.workflow_runs WHERE id = $run")" "CANCELLED" "cancel_run ends a run two workers are in"
is "$(q "SELECT count(*) FROM orchestration.workflow_run_nodes WHERE run_id = $run AND status NOT IN ('SUCCESS', 'CANCELLED')")" "0" \
   "every node either ran before the cancel or is cancelled"
is "$(q "SELECT count(*) > 0 AND count(*) < $((max_nodes * 6)) FROM orchestration.agent_runs WHERE run_id = $run")" "t" \
   "some ran, the rest never will"

# The scheduler never waits for a RULE worker. A RULE worker that skipped a node holds its
# run's row for writing while it runs the next node's function (here 6 s). Meanwhile a
# container node of that run (c2, kept back by max_concurrent_nodes_per_project = 1 until
# c1's container ended) becomes claimable: the scheduler's claim passes over the run
# rather than waiting for the function to return, and another project's container run
# started then finishes long before it.
q "ALTER SYSTEM SET orchestration.max_concurrent_nodes_per_project = 1" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
q "CREATE FUNCTION public.slow(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT pg_sleep(6); SELECT '{}'::jsonb \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"slow\", \"type\": \"RULE\", \"function\": \"public.slow\", \"limits\": {\"timeout_seconds\": 30}, \"capabilities\": [{\"name\": \"run\"}]}')" >/dev/null
for project in 1 2; do
  q "SELECT orchestration.register_agent($project, '{\"name\": \"box\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"sleep 1; echo {}\"], \"capabilities\": [{\"name\": \"run\"}]}')" >/dev/null
done
q "SELECT orchestration.create_workflow(1, '{\"name\": \"mixed\", \"nodes\": [
     {\"id\": \"a_skipped\", \"agent\": \"whoami\", \"action\": \"run\", \"when\": \"1 == 2\"},
     {\"id\": \"b_slow\", \"agent\": \"slow\", \"action\": \"run\"},
     {\"id\": \"c1\", \"agent\": \"box\", \"action\": \"run\"},
     {\"id\": \"c2\", \"agent\": \"box\", \"action\": \"run\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(2, '{\"name\": \"boxed\", \"nodes\": [{\"id\": \"c\", \"agent\": \"box\", \"action\": \"run\"}]}')" >/dev/null
mixed=$(q "SELECT orchestration.start_workflow(1, 'mixed')")
# (a_skipped, claimed first, was skipped in the RULE worker's transaction before b_slow.)
wait_for 30 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database() AND wait_event = 'PgSleep'" >/dev/null
sleep 2.5  # c1's container has ended; its result waits for the run's row, c2 is claimable
boxed=$(q "SELECT orchestration.start_workflow(2, 'boxed')")
is "$(q "SELECT orchestration.wait_for_run($boxed, '60 s')->>'status'")" "SUCCESS" "a container run started meanwhile succeeds"
is "$(q "SELECT orchestration.wait_for_run($mixed, '60 s')->>'status'")" "SUCCESS" "and so does the run with the slow function"
is "$(q "SELECT r.finished_at < n.finished_at FROM orchestration.workflow_runs r, orchestration.workflow_run_nodes n
        WHERE r.id = $boxed AND n.run_id = $mixed AND n.node_key = 'b_slow'")" "t" \
   "the container run ended before the slow function did: the scheduler did not wait for the RULE worker"
q "ALTER SYSTEM RESET orchestration.max_concurrent_nodes_per_project" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null

is "$(tail -n +"$((log_lines_before + 1))" "$DATA/log/postgresql.log" | grep -c 'deadlock detected')" "0" "no deadlock in the server log"
done_testing
