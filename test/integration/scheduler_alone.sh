#!/usr/bin/env bash
# orchestration.rule_workers = 0: no RULE worker; the scheduler runs RULE nodes itself,
# beside the containers, woken at commit for both.
source "$(dirname "$0")/lib.bash"
docker version >/dev/null 2>&1 || { echo "Bail out! no Docker engine"; exit 1; }

restart_cluster() {
  pg_ctl_as_postgres -m fast -w stop >/dev/null
  pg_ctl_as_postgres -l "$(dirname "$DATA")/server.log" -w start >/dev/null
}
# Whatever happens, the cluster goes back to its settings for the tests after this one.
restore() {
  q "ALTER SYSTEM RESET orchestration.rule_workers" >/dev/null 2>&1
  q "ALTER SYSTEM RESET orchestration.poll_interval_ms" >/dev/null 2>&1
  restart_cluster
  wait_for 30 "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker'" >/dev/null
}
trap restore EXIT

q "ALTER SYSTEM SET orchestration.rule_workers = 0"
q "ALTER SYSTEM SET orchestration.poll_interval_ms = '600s'"  # only a wake-up can explain a prompt start
restart_cluster
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }
is "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker'")" "0" \
   "with rule_workers = 0 there is no RULE worker"

q "CREATE FUNCTION public.ping(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT jsonb_build_object('seen', input) \$\$"
rule_workflow ping
run=$(q "SELECT orchestration.start_workflow(1, 'ping')")
is "$(q "SELECT orchestration.wait_for_run($run, '30 seconds')->>'status'")" "SUCCESS" \
   "the scheduler runs a RULE node itself"
is "$(q "SELECT finished_at - created_at < interval '10 seconds' FROM orchestration.workflow_runs WHERE id = $run")" "t" \
   "woken by the commit that started it (the poll interval is 600 s)"

# RULE, container, RULE: each node's end wakes the scheduler for the next, whatever it is.
q "SELECT orchestration.register_agent(1, '{\"name\": \"echo\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"cat\"], \"capabilities\": [{\"name\": \"echo\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"mixed\", \"nodes\": [
     {\"id\": \"a\", \"agent\": \"ping\", \"action\": \"ping\", \"inputs\": {\"n\": 1}},
     {\"id\": \"b\", \"agent\": \"echo\", \"action\": \"echo\", \"depends_on\": [\"a\"], \"inputs\": {\"from_a\": \"{{ nodes.a.output.seen.n }}\"}},
     {\"id\": \"c\", \"agent\": \"ping\", \"action\": \"ping\", \"depends_on\": [\"b\"], \"inputs\": {\"from_b\": \"{{ nodes.b.output.from_a }}\"}}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'mixed')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 seconds')->>'status'")" "SUCCESS" \
   "a RULE, container, RULE chain runs through the scheduler alone"
is "$(q "SELECT output->'seen'->>'from_b' FROM orchestration.workflow_run_nodes WHERE run_id = $run AND node_key = 'c'")" "1" \
   "its data flows from the first RULE node through the container to the last"
is "$(q "SELECT finished_at - created_at < interval '20 seconds' FROM orchestration.workflow_runs WHERE id = $run")" "t" \
   "without waiting for a poll between its nodes"
done_testing
