#!/usr/bin/env bash
# An idle scheduler, and its idle RULE workers, sleep on their latches: they use no CPU
# between polls, and still start a new run at once (woken at commit), long before their
# poll interval would.
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }

# scripts/cluster.sh creates the databases the workers are configured for: none of them
# fails to connect for want of its database.
is "$(q "SELECT string_agg(trim(d), ', ') FROM unnest(string_to_array(current_setting('orchestration.database_name'), ',')) d
         WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = trim(d))")" "" \
   "every database in orchestration.database_name exists"
# It also reserves huge pages for the shared memory, as root (README, Configuration: a page
# fault costs about 10 µs on the virtual machines this runs on), and the server uses them.
# Where the kernel's setting cannot be written (not root, a read-only /proc/sys), the
# cluster runs on 4 kB pages and there is nothing to check.
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
  needed=$(q "SHOW shared_memory_size_in_huge_pages")
  is "$(awk -v needed="$needed" '/^HugePages_Total:/ {print ($2 >= needed)}' /proc/meminfo)" "1" \
     "the kernel has the $needed huge pages the cluster's shared memory needs"
  is "$(awk '/^HugetlbPages:/ {print ($2 > 0)}' "/proc/$(head -1 "$DATA/postmaster.pid")/status")" "1" \
     "the server's shared memory is on them (the postmaster's HugetlbPages)"
else
  for what in "the kernel's huge pages" "the server on them"; do
    tap_count=$((tap_count + 1)); echo "ok $tap_count # skip $what: /proc/sys/vm/nr_hugepages cannot be written here"
  done
fi
q "ALTER SYSTEM SET orchestration.poll_interval_ms = '600s'"
q "SELECT pg_reload_conf()" >/dev/null
sleep 1
pid=$(scheduler_pid)
rule_pids=$(q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database()")

is "$(q "SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE pid = $pid")" "Extension/Extension" \
   "the idle scheduler waits on its latch"
is "$(q "SELECT count(*) > 0 AND bool_and(wait_event = 'Extension') FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database()")" "t" \
   "so do the idle RULE workers ($rule_pids)"
before=$(cpu_ticks "$pid"); rule_before=$(cpu_ticks $rule_pids)
sleep 3
after=$(cpu_ticks "$pid"); rule_after=$(cpu_ticks $rule_pids)
is "$((after - before))" "0" "it used no CPU in 3 idle seconds (utime+stime ticks)"
is "$((rule_after - rule_before))" "0" "nor did the RULE workers"

q "CREATE FUNCTION public.ping(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{\"pong\": true}'::jsonb \$\$"
rule_workflow ping
run=$(q "SELECT orchestration.start_workflow(1, 'ping')")
# Far less than the 600 s poll interval: only the commit-time wake-up can explain it.
is "$(q "SELECT orchestration.wait_for_run($run, '30 seconds')->>'status'")" "SUCCESS" \
   "a run started while idle finishes without waiting for a poll"
is "$(q "SELECT finished_at - created_at < interval '5 seconds' FROM orchestration.workflow_runs WHERE id = $run")" "t" \
   "it was picked up at once (well under the 600 s poll interval)"
# Who is woken by what: a RULE-only run needs one RULE worker. The scheduler (containers)
# and the other RULE worker stay asleep; each pass a worker runs shows in pg_stat_activity
# (state_change), so a process that did not wake keeps its timestamp.
changes() { q "SELECT string_agg(state_change::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE pid IN ($1)"; }
sleep 0.5
sched_before=$(changes "$pid"); rules_before=$(changes "${rule_pids// /,}")
for _ in 1 2 3; do
  run=$(q "SELECT orchestration.start_workflow(1, 'ping')")
  q "SELECT orchestration.wait_for_run($run, '30 seconds')" >/dev/null
  sleep 0.3  # both workers asleep again before the next start
done
is "$(changes "$pid")" "$sched_before" "three RULE-only runs did not wake the scheduler"
woken=0
IFS=, read -r -a rb <<<"$rules_before"; IFS=, read -r -a ra <<<"$(changes "${rule_pids// /,}")"
for i in "${!rb[@]}"; do [ "${rb[$i]}" != "${ra[$i]}" ] && woken=$((woken + 1)); done
is "$woken" "1" "each start woke one RULE worker (the first asleep), not all of them"

# And for one pass, not two: the commit names the one project it made nodes runnable in,
# and a pass that served it does not look again for more (before session 20 every start
# cost its worker a second pass that found nothing). Counted in pg_stat_user_functions: a
# worker sends its counts at the end of a pass a second or more after it last did, so a
# start 1.2 s after the others sends theirs with its own.
q "ALTER SYSTEM SET track_functions = 'all'"
q "SELECT pg_reload_conf()" >/dev/null
claims() { q "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE schemaname = 'orchestration' AND funcname = 'claim_nodes'"; }
ping() {
  local run; run=$(q "SELECT orchestration.start_workflow(${1:-1}, 'ping')")
  q "SELECT orchestration.wait_for_run($run, '30 seconds')" >/dev/null
  sleep 0.3  # the worker asleep again: the next start wakes the same one
}
# The claims the RULE workers made for twenty calls of $1 and a start after them, whose
# pass sends the counts of the last ones. 21 with one pass each; counts sent late or
# early move a few across the window (seen: 23-25).
claims_for_twenty() {
  local before; before=$(claims)
  for _ in $(seq 20); do "$1"; done
  sleep 1.2; ping
  echo $(($(claims) - before))
}
sleep 0.5; ping; sleep 1.2; ping; sleep 1.2
claimed=$(claims_for_twenty ping)
[ "$claimed" -ge 15 ] && [ "$claimed" -le 30 ]
ok $? "21 starts cost the RULE workers $claimed claims (one pass each: 21; two each: 42)"
# A wake that names no project (a commit that released nodes of several projects, a full
# claim's wake_now) tells the worker it wakes to look, and that look answers it: when its
# claim finds nothing, it found nothing the wake was for, and a second look would not
# either (before session 21 it took one: a third RULE worker woken by each full claim of a
# wide run whose project already had two made two empty claims each time).
wake() {
  q "SELECT orchestration.wake_workers(true, false)" >/dev/null
  sleep 0.3
}
sleep 1.2
claimed=$(claims_for_twenty wake)
[ "$claimed" -ge 15 ] && [ "$claimed" -le 30 ]
ok $? "20 wakes naming no project, with nothing to run, and a start cost $claimed claims (one pass each: 21; two each: 41)"
q "ALTER SYSTEM RESET track_functions"
q "SELECT pg_reload_conf()" >/dev/null

# A worker woken for one project's nodes may serve another project first (its claim takes
# the first runnable node, whoever's it is): it then looks again, and the project it was
# woken for does not wait for a poll. Project 1's node below becomes runnable without
# waking anyone (the due time of its retry moved by hand), then project 4's start wakes a
# worker, which takes project 1's node first.
q "CREATE FUNCTION public.refuses(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'refused'; END \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"refuses\", \"type\": \"RULE\", \"function\": \"public.refuses\", \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"refuses\", \"nodes\": [{\"id\": \"go\", \"agent\": \"refuses\", \"action\": \"go\", \"retries\": 1, \"retry_backoff_seconds\": 3600}]}')" >/dev/null
stuck=$(q "SELECT orchestration.start_workflow(1, 'refuses')")
wait_for 30 "SELECT count(*) = 1 FROM orchestration.agent_runs WHERE run_id = $stuck"
ok $? "project 1's node failed its first attempt; its retry is due in an hour"
rule_workflow ping 4
sleep 0.5
q "UPDATE orchestration.workflow_run_nodes SET next_attempt_at = clock_timestamp() WHERE run_id = $stuck"
run=$(q "SELECT orchestration.start_workflow(4, 'ping')")
is "$(q "SELECT orchestration.wait_for_run($run, '30 seconds')->>'status'")" "SUCCESS" "project 4's run succeeds"
is "$(q "SELECT finished_at - created_at < interval '5 seconds' FROM orchestration.workflow_runs WHERE id = $run")" "t" \
   "without waiting for a poll, though the worker its start woke took project 1's node first"
is "$(q "SELECT count(*) || ' attempts, the retry first: ' || (max(a.started_at) < (SELECT started_at FROM orchestration.agent_runs WHERE run_id = $run))
         FROM orchestration.agent_runs a WHERE a.run_id = $stuck")" "2 attempts, the retry first: true" \
   "which it ran first (the retry)"

# Released nodes wake the worker that runs them: a RULE node's success wakes the scheduler
# for the container after it, a container's result a RULE worker for the RULE node after
# it, all well under the 600 s poll interval.
q "SELECT orchestration.register_agent(1, '{\"name\": \"echo\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"cat\"], \"capabilities\": [{\"name\": \"echo\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"mixed\", \"nodes\": [
     {\"id\": \"a\", \"agent\": \"ping\", \"action\": \"ping\"},
     {\"id\": \"b\", \"agent\": \"echo\", \"action\": \"echo\", \"depends_on\": [\"a\"]},
     {\"id\": \"c\", \"agent\": \"ping\", \"action\": \"ping\", \"depends_on\": [\"b\"]}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'mixed')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 seconds')->>'status'")" "SUCCESS" \
   "RULE -> container -> RULE finishes with the workers polling every 600 s"
is "$(q "SELECT finished_at - created_at < interval '20 seconds' FROM orchestration.workflow_runs WHERE id = $run")" "t" \
   "each hop was a wake-up, not a poll"

# A RULE worker's own commit wakes no other RULE worker: what it made runnable and did not
# run itself, it looks at again after its commit. Here a false condition skips "gate" and
# releases "after" (run_if_skipped) in the worker's transaction, after its claim.
q "SELECT orchestration.create_workflow(1, '{\"name\": \"gated\", \"nodes\": [
     {\"id\": \"gate\", \"agent\": \"ping\", \"action\": \"ping\", \"when\": \"{{ context.go }}\"},
     {\"id\": \"after\", \"agent\": \"ping\", \"action\": \"ping\", \"depends_on\": [\"gate\"], \"run_if_skipped\": true}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'gated', '{\"go\": false}')")
is "$(q "SELECT string_agg(n->>'node_key' || ' ' || (n->>'status'), ', ') FROM jsonb_array_elements(orchestration.wait_for_run($run, '30 seconds')->'nodes') n")" \
   "gate SKIPPED, after SUCCESS" "a node a RULE worker's skip released runs without waiting for a poll"

# One commit that makes nodes of three projects runnable wakes one RULE worker, whose pass
# serves one project: it looks again after its pass, and goes on while it finds nodes.
for project in 2 3; do
  rule_workflow ping "$project"
done
sleep 0.3
runs=$(q "SELECT string_agg(orchestration.start_workflow(p, 'ping')::text, ',' ORDER BY p) FROM generate_series(1, 3) p")
is "$(q "SELECT string_agg(orchestration.wait_for_run(id, '30 seconds')->>'status', ',') FROM unnest('{$runs}'::bigint[]) id")" \
   "SUCCESS,SUCCESS,SUCCESS" "runs of three projects started in one transaction all finish without waiting for a poll"

# One project holds at most rule_workers - 1 RULE workers (here 2 of 3). With two of them
# inside a project's functions, a start in that project wakes the third, which leaves the
# project alone and wakes the two instead: the first of them done runs the new node.
q "CREATE FUNCTION public.nap(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(1.5); RETURN '{}'; END \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"nap\", \"type\": \"RULE\", \"function\": \"public.nap\", \"capabilities\": [{\"name\": \"nap\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"nap\", \"nodes\": [{\"id\": \"nap\", \"agent\": \"nap\", \"action\": \"nap\"}]}')" >/dev/null
nap1=$(q "SELECT orchestration.start_workflow(1, 'nap')"); sleep 0.4
nap2=$(q "SELECT orchestration.start_workflow(1, 'nap')"); sleep 0.4
is "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database() AND wait_event = 'PgSleep'")" \
   "2" "two RULE workers run the project's naps, the most one project may hold"
run=$(q "SELECT orchestration.start_workflow(1, 'ping')")
is "$(q "SELECT orchestration.wait_for_run($run, '30 seconds')->>'status'")" "SUCCESS" \
   "a start in that project runs once one of them is done, without waiting for a poll"
is "$(q "SELECT string_agg(orchestration.wait_for_run(id, '30 seconds')->>'status', ',') FROM unnest(ARRAY[$nap1, $nap2]) id")" "SUCCESS,SUCCESS" \
   "and both naps end"

# A retry that is due and that another worker runs is not a reason to spin: the scheduler
# (which leaves RULE nodes to the RULE workers) learnt its due time in a pass during the
# back-off, and sleeps, not loops, while the retry's 3 s attempt runs; so do the other
# RULE workers.
q "CREATE FUNCTION public.flaky(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN
     IF (orchestration.rule_call()->>'attempt')::int = 1 THEN RAISE EXCEPTION 'first attempt fails'; END IF;
     PERFORM pg_sleep(3);
     RETURN '{}';
   END \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"flaky\", \"type\": \"RULE\", \"function\": \"public.flaky\", \"capabilities\": [{\"name\": \"try\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"flaky\", \"nodes\": [{\"id\": \"try\", \"agent\": \"flaky\", \"action\": \"try\", \"retries\": 1, \"retry_backoff_seconds\": 1}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'flaky')")
for _ in $(seq 50); do [ "$(q "SELECT count(*) FROM orchestration.agent_runs WHERE run_id = $run")" = 1 ] && break; sleep 0.05; done
sched_before=$(changes "$pid")
q "SELECT orchestration.wake_scheduler()" >/dev/null
for _ in $(seq 50); do [ "$(changes "$pid")" != "$sched_before" ] && break; sleep 0.02; done
is "$(q "SELECT count(*) || ' attempt, ' || (next_attempt_at > clock_timestamp()) FROM orchestration.workflow_run_nodes n JOIN orchestration.agent_runs a ON a.run_node_id = n.id WHERE n.run_id = $run GROUP BY n.next_attempt_at")" \
   "1 attempt, true" "the first attempt failed, its retry is due later, and the scheduler ran a pass meanwhile"
for _ in $(seq 100); do
  [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database() AND wait_event = 'PgSleep'")" = 1 ] && break
  sleep 0.05
done
is "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_orchestration rule worker' AND datname = current_database() AND wait_event = 'PgSleep'")" \
   "1" "the retry runs"
before=$(cpu_ticks "$pid"); rule_before=$(cpu_ticks $rule_pids); sleep 1
after=$(cpu_ticks "$pid"); rule_after=$(cpu_ticks $rule_pids)
[ $((after - before)) -lt 10 ]
ok $? "the scheduler used $((after - before)) ticks of CPU in a second of the retry (fewer than 10: it did not spin)"
[ $((rule_after - rule_before)) -lt 10 ]
ok $? "nor did the RULE workers ($((rule_after - rule_before)) ticks)"
is "$(q "SELECT orchestration.wait_for_run($run, '30 seconds')->>'status'")" "SUCCESS" "and the retry succeeds"
# A pass that failed is tried again soon, not after the 600 s poll interval: the retry
# records carefully, and the result that broke the pass fails its own node, saying why.
# A trigger refusing one output stands in for an error nobody foresaw. The RULE node's
# refused result is its second attempt's, taken by a pass nobody woke (the retry came
# due): nothing else would make its worker look again. The scheduler's pass held every
# project's containers.
q "CREATE FUNCTION public.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN RAISE EXCEPTION 'refused by a test trigger'; END \$\$"
q "CREATE TRIGGER refuse_boom BEFORE INSERT ON orchestration.agent_runs FOR EACH ROW
   WHEN (NEW.output_json ? 'boom') EXECUTE FUNCTION public.refuse_boom()"
q "CREATE FUNCTION public.boom_later(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN
     IF (orchestration.rule_call()->>'attempt')::int = 1 THEN RAISE EXCEPTION 'first attempt fails'; END IF;
     RETURN '{\"boom\": true}';
   END \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"boom\", \"type\": \"RULE\", \"function\": \"public.boom_later\", \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"boom\", \"nodes\": [{\"id\": \"bad\", \"agent\": \"boom\", \"action\": \"go\", \"retries\": 1, \"retry_backoff_seconds\": 1}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"boom-container\", \"nodes\": [{\"id\": \"bad\", \"agent\": \"echo\", \"action\": \"echo\", \"inputs\": {\"boom\": true}}]}')" >/dev/null
bad_rule=$(q "SELECT orchestration.start_workflow(1, 'boom')")
bad_container=$(q "SELECT orchestration.start_workflow(1, 'boom-container')")
is "$(q "SELECT string_agg(orchestration.wait_for_run(id, '30 seconds')->>'status', ',' ORDER BY id) FROM unnest(ARRAY[$bad_rule, $bad_container]) id")" \
   "FAILED,FAILED" "runs whose results the trigger refuses end, without waiting for a poll"
is "$(q "SELECT string_agg(status || ': ' || error, '; ' ORDER BY run_id) FROM orchestration.workflow_run_nodes WHERE run_id IN ($bad_rule, $bad_container)")" \
   "FAILED: its result could not be stored: refused by a test trigger (after 2 attempts); FAILED: its result could not be stored: refused by a test trigger" \
   "a RULE node's and a container's refused results fail their nodes, saying why"
is "$(q "SELECT bool_and(finished_at - created_at < interval '20 seconds') FROM orchestration.workflow_runs WHERE id IN ($bad_rule, $bad_container)")" "t" \
   "the failed passes were tried again at once (well under the 600 s poll interval)"
q "DROP TRIGGER refuse_boom ON orchestration.agent_runs"
# A pass that fails at its commit (a deferred trigger here; a full NOTIFY queue would do
# the same) is rolled back too, and its worker goes on: left unaborted, that transaction
# kept the node's lock, and the worker could begin no other. (From here on a statement
# waits for a lock 30 s at most: the test fails rather than hangs if that comes back.)
export PGOPTIONS="${PGOPTIONS:-} -c lock_timeout=30s"
q "CREATE SEQUENCE public.commit_refusals"
q "CREATE FUNCTION public.refuse_first_commit() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     IF nextval('public.commit_refusals') = 1 THEN RAISE EXCEPTION 'refused at commit by a test trigger'; END IF;
     RETURN NULL;
   END \$\$"
q "CREATE CONSTRAINT TRIGGER refuse_first_commit AFTER INSERT ON orchestration.agent_runs
   DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.refuse_first_commit()"
run=$(q "SELECT orchestration.start_workflow(1, 'ping')")
is "$(q "SELECT orchestration.wait_for_run($run, '30 seconds')->>'status'")" "SUCCESS" \
   "a run whose recording was refused at commit succeeds at the next pass"
is "$(q "SELECT last_value FROM public.commit_refusals")" "2" "its first commit was refused, the second went through"
q "DROP TRIGGER refuse_first_commit ON orchestration.agent_runs"
run=$(q "SELECT orchestration.start_workflow(1, 'ping')")
is "$(q "SELECT orchestration.wait_for_run($run, '30 seconds')->>'status'")" "SUCCESS" "and the workers go on running nodes"
q "DELETE FROM orchestration.workflow_runs WHERE id <> (SELECT min(id) FROM orchestration.workflow_runs)"

# A rolled-back start creates nothing for it to do.
q "BEGIN; SELECT orchestration.start_workflow(1, 'ping'); ROLLBACK" >/dev/null
sleep 1
is "$(q "SELECT count(*) FROM orchestration.workflow_runs")" "1" "a rolled-back start leaves no run"

q "ALTER SYSTEM RESET orchestration.poll_interval_ms"
q "SELECT pg_reload_conf()" >/dev/null
done_testing
