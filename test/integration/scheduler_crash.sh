#!/usr/bin/env bash
# Crash safety with real processes: kill -9 the scheduler worker, then stop the whole
# server with -m immediate, each in the middle of runs. Afterwards every run finishes,
# and no node that succeeded ran twice (its side effect exists exactly once).
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }

q "CREATE TABLE public.side_effects (run_id bigint, node text, at timestamptz DEFAULT clock_timestamp())"
q "CREATE FUNCTION public.step(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN
     -- The side effect commits with the node's SUCCESS or not at all.
     INSERT INTO public.side_effects (run_id, node) VALUES ((input->>'run')::bigint, input->>'node');
     -- Long enough that ten chains of twenty take seconds even with two RULE workers on
     -- them: the kill and the stop below must come mid-run.
     PERFORM pg_sleep(0.05);
     RETURN jsonb_build_object('n', coalesce((input->>'n')::int, 0) + 1);
   END \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"step\", \"type\": \"RULE\", \"function\": \"public.step\", \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null
nodes='{"id": "n0", "agent": "step", "action": "go", "inputs": {"run": "{{ run.id }}", "node": "n0"}}'
for i in $(seq 1 19); do
  nodes="$nodes, {\"id\": \"n$i\", \"agent\": \"step\", \"action\": \"go\", \"depends_on\": [\"n$((i - 1))\"], \"inputs\": {\"run\": \"{{ run.id }}\", \"node\": \"n$i\", \"n\": \"{{ nodes.n$((i - 1)).output.n }}\"}}"
done
q "SELECT orchestration.create_workflow(1, '{\"name\": \"chain\", \"nodes\": [$nodes]}')" >/dev/null

check_all_done() {  # LABEL RUNS
  ok "$(wait_for 120 "SELECT count(*) FILTER (WHERE status = 'SUCCESS') = $2 FROM orchestration.workflow_runs"; echo $?)" \
     "$1: all $2 runs finish SUCCESS"
  is "$(q "SELECT count(*) FROM public.side_effects")" "$(( $2 * 20 ))" "$1: every node's side effect exists"
  is "$(q "SELECT count(*) FROM (SELECT run_id, node FROM public.side_effects GROUP BY 1, 2 HAVING count(*) > 1) d")" "0" \
     "$1: no node ran twice"
  is "$(q "SELECT count(*) FROM (SELECT run_node_id FROM orchestration.agent_runs WHERE status = 'SUCCESS' GROUP BY 1 HAVING count(*) > 1) d")" "0" \
     "$1: no node has two successful attempts"
  is "$(q "SELECT string_agg(DISTINCT (output->>'n'), ',') FROM orchestration.workflow_run_nodes WHERE node_key = 'n19'")" "20" \
     "$1: every chain carried its values through all 20 nodes"
}

# 1. kill -9 the scheduler while 10 chains of 20 nodes run.
for i in $(seq 1 10); do q "SELECT orchestration.start_workflow(1, 'chain')" >/dev/null; done
wait_for 30 "SELECT count(*) > 20 FROM public.side_effects" >/dev/null
before=$(scheduler_pid)
unfinished=$(q "SELECT count(*) < 200 FROM public.side_effects")
kill -9 "$before"
ok $? "the scheduler (pid $before) is killed with SIGKILL"
is "$unfinished" "t" "the kill came mid-run (work was left)"
sleep 1
ok "$(wait_for 60 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration scheduler' AND datname = current_database() AND pid <> $before"; echo $?)" \
   "a new scheduler starts after the crash"
check_all_done "after kill -9" 10

# 2. stop the whole server with -m immediate while 10 more chains run.
for i in $(seq 1 10); do q "SELECT orchestration.start_workflow(1, 'chain')" >/dev/null; done
wait_for 30 "SELECT count(*) > 220 FROM public.side_effects" >/dev/null
unfinished=$(q "SELECT count(*) < 400 FROM public.side_effects")
pg_ctl_as_postgres -m immediate -w stop >/dev/null
ok $? "the server stops with -m immediate"
is "$unfinished" "t" "the stop came mid-run (work was left)"
pg_ctl_as_postgres -l "$(dirname "$DATA")/server.log" -w start >/dev/null
ok $? "the server starts again"
check_all_done "after an immediate shutdown" 20

done_testing
