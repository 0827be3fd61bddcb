#!/usr/bin/env bash
# Two RULE workers never deadlock on the rows of two runs. A worker's claim round can hold
# nodes of several runs, and it writes them as its nodes go: a skipped node locks its run
# at once, a function's result at the end of the round. Were each worker to take the runs'
# rows in the order its nodes come, one could hold run B and wait for run A while the
# other holds A and waits for B: PostgreSQL would find the deadlock after deadlock_timeout
# (1 s), roll back one worker's pass and run its nodes again. A round takes the rows of
# all its runs in id order before its first write instead, as every writer does (the lock
# order, extension/70_runs.sql).
#
# The scene, set by hand: run A (older) and run B (priority 1), three nodes each, claimed
# two at a time. First a worker runs both "0_start" nodes, which starts the runs. While
# this test holds both "b_quick" nodes, a worker claims B's "a_skipped" (its condition is
# false: skipped, at once) and A's "a_slow" (5 s). Then the test lets go, and another
# worker claims the two "b_quick" nodes, whose results it records in run id order, A then
# B, while the first still runs "a_slow", after which it records it in A.
source "$(dirname "$0")/lib.bash"
reset_database
log=$DATA/log/postgresql.log
log_from=$(stat -c %s "$log")

# nap counts its calls in a sequence, which a rolled-back pass does not undo.
q "CREATE SEQUENCE public.nap_calls; GRANT USAGE ON SEQUENCE public.nap_calls TO PUBLIC"
q "CREATE FUNCTION public.nap(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$
     SELECT nextval('public.nap_calls'); SELECT pg_sleep((input->>'sleep')::float8); SELECT input \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"nap\", \"type\": \"RULE\", \"function\": \"public.nap\", \"capabilities\": [{\"name\": \"nap\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"pair_a\", \"nodes\": [
     {\"id\": \"0_start\", \"agent\": \"nap\", \"action\": \"nap\", \"inputs\": {\"sleep\": 0}},
     {\"id\": \"a_slow\", \"agent\": \"nap\", \"action\": \"nap\", \"inputs\": {\"sleep\": 5}},
     {\"id\": \"b_quick\", \"agent\": \"nap\", \"action\": \"nap\", \"inputs\": {\"sleep\": 0}}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"pair_b\", \"nodes\": [
     {\"id\": \"0_start\", \"agent\": \"nap\", \"action\": \"nap\", \"inputs\": {\"sleep\": 0}},
     {\"id\": \"a_skipped\", \"agent\": \"nap\", \"action\": \"nap\", \"when\": false},
     {\"id\": \"b_quick\", \"agent\": \"nap\", \"action\": \"nap\", \"inputs\": {\"sleep\": 0}}]}')" >/dev/null
# Two nodes a claim, so that each worker's claim holds nodes of both runs.
q "ALTER SYSTEM SET orchestration.max_nodes_per_transaction = 2"
q "SELECT pg_reload_conf()" >/dev/null
out=$(mktemp -d)
restore() { q "ALTER SYSTEM RESET orchestration.max_nodes_per_transaction"; q "SELECT pg_reload_conf()" >/dev/null; rm -rf "$out"; }
trap restore EXIT
sleep 0.5

# The two runs' ids, reserved before they exist: no worker claims a node of either until
# the reservation ends. Meanwhile the test takes their nodes but "0_start": a worker first
# claims and runs those (which starts both runs), then the "a_" nodes, then the "b_quick"
# ones, as the test lets go of each pair.
next=$(q "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM orchestration.workflow_runs_id_seq")
run_a=$next
run_b=$((next + 1))
# hold SECONDS NODE_KEY...: a session that holds these nodes of both runs for SECONDS, then
# wakes a RULE worker as it lets go; prints how many it held.
hold() {
  local seconds=$1; shift
  local keys; keys=$(printf "'%s'," "$@"); keys=${keys%,}
  psql -X -q -At -c "BEGIN" \
    -c "SELECT count(*) FROM (SELECT 1 FROM orchestration.workflow_run_nodes WHERE node_key IN ($keys) AND run_id IN ($run_a, $run_b) FOR UPDATE) n" \
    -c "SELECT pg_sleep($seconds)" -c "SELECT orchestration.wake_scheduler()" -c "COMMIT"
}
psql -X -q -At -c "BEGIN" -c "SELECT orchestration.reserve_run($run_a), orchestration.reserve_run($run_b)" \
  -c "SELECT pg_sleep(3)" -c "SELECT orchestration.wake_scheduler()" -c "COMMIT" >"$out/reserved" 2>&1 &
reserver=$!
wait_for_sleeper 3
is "$(q "SELECT orchestration.start_workflow(1, 'pair_a')")" "$run_a" "run A has the id reserved for it"
is "$(q "SELECT orchestration.start_workflow(1, 'pair_b', priority => 1)")" "$run_b" "and run B too"
hold 4.5 a_slow a_skipped >"$out/a" 2>&1 &
first_pair=$!
hold 6.5 b_quick >"$out/b" 2>&1 &
second_pair=$!
wait_for_sleeper 4.5
wait_for_sleeper 6.5
wait "$reserver" "$first_pair" "$second_pair"
is "$(head -1 "$out/a") $(head -1 "$out/b")" "2 2" "the test held the a_ nodes and the b_quick nodes until then"

ok "$(wait_for 20 "SELECT count(*) = 2 FROM orchestration.workflow_runs WHERE id IN ($run_a, $run_b) AND status = 'SUCCESS'" && echo 0 || echo 1)" \
   "both runs succeed"
is "$(q "SELECT string_agg(r.id || ':' || n.node_key || ':' || n.status || ':' || n.attempt, ' ' ORDER BY r.id, n.node_key)
         FROM orchestration.workflow_runs r JOIN orchestration.workflow_run_nodes n ON n.run_id = r.id WHERE r.id IN ($run_a, $run_b)")" \
   "$run_a:0_start:SUCCESS:1 $run_a:a_slow:SUCCESS:1 $run_a:b_quick:SUCCESS:1 $run_b:0_start:SUCCESS:1 $run_b:a_skipped:SKIPPED:0 $run_b:b_quick:SUCCESS:1" \
   "every node but the skipped one succeeded at its first attempt"
is "$(q "SELECT count(DISTINCT q.scheduler_round) = 1 AND max(q.started_at) < (SELECT s.finished_at FROM orchestration.agent_runs s
                                                                          WHERE s.run_id = $run_a AND s.node_key = 'a_slow')
         FROM orchestration.agent_runs q WHERE q.run_id IN ($run_a, $run_b) AND q.node_key = 'b_quick'")" "t" \
   "the scene took place: one claim ran both b_quick nodes while a_slow ran"
is "$(q "SELECT last_value FROM public.nap_calls")" "5" "and each of those five functions was called once (no pass was rolled back and run again)"
deadlocks=$(tail -c +"$((log_from + 1))" "$log" | grep -c "deadlock detected")
is "$deadlocks" "0" "no deadlock between the two workers (the server log says none was detected)"
if [ "$deadlocks" != 0 ]; then tail -c +"$((log_from + 1))" "$log" | grep -A3 "deadlock detected" | head -12 | sed 's/^/# /'; fi

# lock_runs takes every run it is given for writing (FOR NO KEY UPDATE), whatever their
# order in the array, and claims (FOR KEY SHARE) go on beside it.
psql -X -q -At -c "BEGIN" -c "SELECT orchestration.lock_runs(ARRAY[$run_b, $run_a])" -c "SELECT pg_sleep(2)" -c "COMMIT" \
  >/dev/null 2>&1 &
locker=$!
wait_for_sleeper 2
is "$(q "SELECT count(*) FROM (SELECT 1 FROM orchestration.workflow_runs WHERE id IN ($run_a, $run_b) FOR NO KEY UPDATE SKIP LOCKED) r")" "0" \
   "lock_runs holds both runs against other writers"
is "$(q "SELECT count(*) FROM (SELECT 1 FROM orchestration.workflow_runs WHERE id IN ($run_a, $run_b) FOR KEY SHARE SKIP LOCKED) r")" "2" \
   "and not against claims"
wait "$locker"

done_testing
