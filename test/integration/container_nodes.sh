#!/usr/bin/env bash
# Container agents through the scheduler, on the real Docker engine: runs, the allowlist,
# parallel containers beside RULE nodes, secrets that leave no trace, cancel, and kill -9
# of the scheduler while containers run.
source "$(dirname "$0")/lib.bash"
docker version >/dev/null 2>&1 || { echo "Bail out! no Docker engine"; exit 1; }
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }
q "ALTER SYSTEM SET orchestration.allowed_images = 'orchestration/busybox:*'"
q "SELECT pg_reload_conf()" >/dev/null
sleep 1
secret="tok-$(date +%s%N)-value"
created() {  # container creations of this database since $1, one name per line
  docker events --since "$1" --until "$(date +%s)" --filter event=create \
    --filter "label=orchestration.database=$PGDATABASE" --format '{{.Actor.Attributes.name}}'
}
t0=$(date +%s)

q "CREATE FUNCTION public.quick(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{\"quick\": true}'::jsonb \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"echo\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"cat; echo echoed >&2\"], \"capabilities\": [{\"name\": \"echo\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"sleeper\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"cat >/dev/null; sleep 2; echo {}\"], \"capabilities\": [{\"name\": \"sleep\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"long\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"sleep 60; echo {}\"], \"capabilities\": [{\"name\": \"wait\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"uses-token\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"secrets\": [\"API_TOKEN\"], \"command\": [\"sh\", \"-c\", \"cat >/dev/null; echo {\\\\\\\"length\\\\\\\": \${#API_TOKEN}}\"], \"capabilities\": [{\"name\": \"call\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"miner\", \"type\": \"SCRIPT\", \"image\": \"evil/miner:latest\", \"capabilities\": [{\"name\": \"mine\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"quick\", \"type\": \"RULE\", \"function\": \"public.quick\", \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null

# 1. A chain of two containers, data flowing through templates.
q "SELECT orchestration.create_workflow(1, '{\"name\": \"chain\", \"nodes\": [{\"id\": \"a\", \"agent\": \"echo\", \"action\": \"echo\", \"inputs\": {\"who\": \"{{ context.who }}\"}}, {\"id\": \"b\", \"agent\": \"echo\", \"action\": \"echo\", \"depends_on\": [\"a\"], \"inputs\": {\"from_a\": \"{{ nodes.a.output.who }}\"}}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'chain', '{\"who\": \"world\"}')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->>'status'")" "SUCCESS" "a chain of two container nodes succeeds"
is "$(q "SELECT output::text FROM orchestration.workflow_run_nodes WHERE run_id = $run AND node_key = 'b'")" '{"from_a": "world"}' \
   "the second container got the first one's output through its template"
is "$(q "SELECT string_agg(exit_code || ':' || log_tail, ',' ORDER BY id) FROM orchestration.agent_runs WHERE run_id = $run")" \
   "$(printf '0:echoed\n,0:echoed\n')" "exit codes and log tails are recorded"

# 2. A disallowed image fails before any container is created.
q "SELECT orchestration.create_workflow(1, '{\"name\": \"mine\", \"nodes\": [{\"id\": \"m\", \"agent\": \"miner\", \"action\": \"mine\"}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'mine')")
is "$(q "SELECT orchestration.wait_for_run($run, '30 s')->'nodes'->0->>'error'")" \
   'image "evil/miner:latest" is not allowed by orchestration.allowed_images ("orchestration/busybox:*"); no container was created' \
   "a disallowed image is refused"
is "$(created "$t0" | grep -c "r$run-")" "0" "and no container was created for it"

# 3. Ten containers sleeping 2 s in parallel; a RULE node of another run finishes meanwhile.
nodes=$(for i in $(seq 0 9); do printf '{"id": "s%d", "agent": "sleeper", "action": "sleep"},' "$i"; done)
q "SELECT orchestration.create_workflow(1, '{\"name\": \"wide\", \"nodes\": [${nodes%,}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"quick\", \"nodes\": [{\"id\": \"q\", \"agent\": \"quick\", \"action\": \"go\"}]}')" >/dev/null
start=$SECONDS
wide=$(q "SELECT orchestration.start_workflow(1, 'wide')")
wait_for 30 "SELECT count(*) = 10 FROM orchestration.workflow_run_nodes WHERE run_id = $wide AND status = 'RUNNING'" >/dev/null
quick=$(q "SELECT orchestration.start_workflow(1, 'quick')")
is "$(q "SELECT orchestration.wait_for_run($wide, '60 s')->>'status'")" "SUCCESS" "ten sleeping containers succeed"
ok "$([ $((SECONDS - start)) -lt 12 ]; echo $?)" "they ran in parallel (all done in $((SECONDS - start)) s, not 20)"
is "$(q "SELECT (SELECT finished_at FROM orchestration.workflow_runs WHERE id = $quick) < (SELECT min(finished_at) FROM orchestration.workflow_run_nodes WHERE run_id = $wide)")" "t" \
   "a RULE node of another run finished while they slept"

# 3b. orchestration.max_concurrent_nodes caps the containers running at once; RULE nodes,
# which run inside the scheduler, are not held back by it.
q "ALTER SYSTEM SET orchestration.max_concurrent_nodes = 3"
q "SELECT pg_reload_conf()" >/dev/null
sleep 1
wide=$(q "SELECT orchestration.start_workflow(1, 'wide')")
wait_for 30 "SELECT count(*) > 0 FROM orchestration.workflow_run_nodes WHERE run_id = $wide AND status = 'RUNNING'" >/dev/null
quick=$(q "SELECT orchestration.start_workflow(1, 'quick')")
most=0; quick_done_while_waiting=f
while [ "$(q "SELECT status FROM orchestration.workflow_runs WHERE id = $wide")" = RUNNING ]; do
  read -r running waiting quick_status <<<"$(q "SELECT count(*) FILTER (WHERE status = 'RUNNING'), count(*) FILTER (WHERE status = 'PENDING'),
    (SELECT status FROM orchestration.workflow_runs WHERE id = $quick) FROM orchestration.workflow_run_nodes WHERE run_id = $wide" | tr '|' ' ')"
  [ "$running" -gt "$most" ] && most=$running
  [ "$quick_status" = SUCCESS ] && [ "$waiting" -gt 0 ] && quick_done_while_waiting=t
  sleep 0.1
done
is "$(q "SELECT status FROM orchestration.workflow_runs WHERE id = $wide")" "SUCCESS" "ten containers under a limit of 3 succeed"
is "$most" "3" "never more than 3 containers ran at once, and 3 did"
is "$quick_done_while_waiting" "t" "a RULE run finished while containers still waited for room"
q "ALTER SYSTEM RESET orchestration.max_concurrent_nodes"
q "SELECT pg_reload_conf()" >/dev/null

# 4. A secret reaches the container and nothing else.
# Passed as a psql variable bound into the call, as a client would bind a parameter.
psql -X -q -At -v ON_ERROR_STOP=1 -v secret="$secret" >/dev/null <<'SQL'
SELECT orchestration.set_secret(1, 'API_TOKEN', :'secret');
SQL
q "SELECT orchestration.create_workflow(1, '{\"name\": \"token\", \"nodes\": [{\"id\": \"t\", \"agent\": \"uses-token\", \"action\": \"call\"}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'token')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 s')->'nodes'->0->'output'->>'length'")" "${#secret}" \
   "the agent read the secret from its environment"
is "$(runuser -u postgres -- pg_dump -h "$PGHOST" -p "$PGPORT" --exclude-table-data=orchestration.secrets "$PGDATABASE" | grep -c -- "$secret")" "0" \
   "the secret is nowhere in the database but the secrets table"
is "$(grep -rc -- "$secret" "$DATA/log" | awk -F: '{s += $2} END {print s + 0}')" "0" "nor in the server log"

# 5. cancel_run stops a running container.
q "SELECT orchestration.create_workflow(1, '{\"name\": \"long\", \"nodes\": [{\"id\": \"l\", \"agent\": \"long\", \"action\": \"wait\"}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'long')")
wait_for 30 "SELECT status = 'RUNNING' FROM orchestration.workflow_run_nodes WHERE run_id = $run" >/dev/null
sleep 1
start=$SECONDS
q "SELECT orchestration.cancel_run($run, 'no longer needed')" >/dev/null
ok "$(wait_for 30 "SELECT status = 'CANCELLED' FROM orchestration.workflow_run_nodes WHERE run_id = $run"; echo $?)" \
   "the running container node ends CANCELLED"
ok "$([ $((SECONDS - start)) -lt 20 ]; echo $?)" "its 60 s container was stopped (in $((SECONDS - start)) s)"

# 6. kill -9 of the scheduler while containers run: every run completes, no node's
#    container runs twice, nothing is left behind.
t1=$(date +%s)
runs=""
for i in 1 2 3; do runs="$runs $(q "SELECT orchestration.start_workflow(1, 'wide')")"; done
wait_for 30 "SELECT count(*) >= 5 FROM orchestration.workflow_run_nodes WHERE status = 'RUNNING'" >/dev/null
kill -9 "$(scheduler_pid)"
ok $? "the scheduler is killed with SIGKILL while containers run"
sleep 2
if wait_for 120 "SELECT bool_and(status = 'SUCCESS') FROM orchestration.workflow_runs WHERE id IN ($(echo $runs | tr ' ' ','))"; then
  ok 0 "every run completes after the restart"
else
  ok 1 "every run completes after the restart"
  q "SELECT '#   ' || run_id || ' ' || node_key || ' ' || status || ' attempt ' || attempt || ' ' || coalesce(container_name, '-') || ' ' || coalesce(error, '')
     FROM orchestration.workflow_run_nodes WHERE run_id IN ($(echo $runs | tr ' ' ',')) AND status <> 'SUCCESS'"
  docker ps -a --filter "label=orchestration.database=$PGDATABASE" --format '#   container {{.Names}} {{.Status}}'
fi
is "$(created "$t1" | sed 's/-a[0-9]*$//' | sort | uniq -d | wc -l)" "0" "no node's container was created twice"
is "$(q "SELECT count(*) FROM (SELECT run_node_id FROM orchestration.agent_runs WHERE status = 'SUCCESS' GROUP BY 1 HAVING count(*) > 1) d")" "0" \
   "no node succeeded twice"
sleep 1
is "$(docker ps -aq --filter "label=orchestration.database=$PGDATABASE" | wc -l)" "0" "no container is left behind"

# 7. A container node whose agent its table's owner deleted (delete_agent would refuse: a
#    run uses it) while the scheduler was down: recovery fails the node saying so and
#    removes its container, rather than leaving the node RUNNING for ever.
q "SELECT orchestration.register_agent(1, '{\"name\": \"doomed\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"sleep 60; echo {}\"], \"capabilities\": [{\"name\": \"wait\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"doomed\", \"nodes\": [{\"id\": \"d\", \"agent\": \"doomed\", \"action\": \"wait\"}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'doomed')")
wait_for 30 "SELECT status = 'RUNNING' FROM orchestration.workflow_run_nodes WHERE run_id = $run" >/dev/null
q "SELECT orchestration.update_workflow(id, '{\"name\": \"doomed\", \"nodes\": [{\"id\": \"d\", \"agent\": \"echo\", \"action\": \"echo\"}]}') FROM orchestration.workflows WHERE name = 'doomed'" >/dev/null
q "DELETE FROM orchestration.agents WHERE name = 'doomed'"
kill -9 "$(scheduler_pid)"
ok "$(wait_for 30 "SELECT status = 'FAILED' FROM orchestration.workflow_run_nodes WHERE run_id = $run"; echo $?)" \
   "after a crash, a running container node whose agent was deleted fails"
is "$(q "SELECT error FROM orchestration.workflow_run_nodes WHERE run_id = $run")" \
   "its agent, or the capability it calls, was deleted while its container ran" "saying why"
sleep 1
is "$(docker ps -aq --filter "label=orchestration.database=$PGDATABASE" | wc -l)" "0" "and its container was removed"

q "ALTER SYSTEM RESET orchestration.allowed_images"
q "SELECT pg_reload_conf()" >/dev/null
done_testing
