#!/usr/bin/env bash
# wait_for_run sleeps on its latch, set by the commit that changes a run: it does not poll,
# it wakes when the run changes, a cancel interrupts it, and a wait for "finished" goes on
# through an approval.
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }

q "CREATE FUNCTION public.echo(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT input \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"echo\", \"type\": \"RULE\", \"function\": \"public.echo\", \"capabilities\": [{\"name\": \"say\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"gate\", \"type\": \"RULE\", \"function\": \"public.echo\", \"risk_level\": \"APPROVAL_REQUIRED\", \"capabilities\": [{\"name\": \"say\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"gated\", \"nodes\": [{\"id\": \"ask\", \"agent\": \"gate\", \"action\": \"say\"}, {\"id\": \"after\", \"agent\": \"echo\", \"action\": \"say\", \"depends_on\": [\"ask\"]}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'gated')")

is "$(q "SELECT orchestration.wait_for_run($run, 30)->>'status'")" "WAITING_APPROVAL" \
   "by default a wait ends when the run waits for a person (settled)"

out=$(mktemp)
psql -X -q -At -c "SET application_name = 'waiter'" \
  -c "SELECT r->>'status', r->>'timed_out' FROM orchestration.wait_for_run($run, 60, 'finished') r" >"$out" 2>&1 &
waiter=$!
wait_for 10 "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'waiter' AND state = 'active'" ||
  echo "# the waiter did not start"
sleep 1
# Polling would show the backend in pg_sleep (Timeout/PgSleep) and spend CPU.
is "$(q "SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE application_name = 'waiter'")" "Extension/Extension" \
   "a wait for the end sleeps on its latch"
wpid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'waiter'")
before=$(cpu_ticks "$wpid"); sleep 2; after=$(cpu_ticks "$wpid")
is "$((after - before))" "0" "and uses no CPU while nothing changes (utime+stime ticks over 2 s)"

approval=$(q "SELECT id FROM orchestration.workflow_approvals WHERE run_id = $run AND status = 'PENDING'")
q "SELECT orchestration.approve($approval, 'go')" >/dev/null
approved_at=$(date +%s%N)
wait "$waiter"
ended_at=$(date +%s%N)
is "$(cat "$out")" "SUCCESS|" "after the approval it returns the finished run (not timed out)"
echo "# approval commit -> wait_for_run returned in psql: $(( (ended_at - approved_at) / 1000000 )) ms (includes the run's last node)"

# A cancel (or statement_timeout) interrupts the sleep at once, and the wait leaves nothing
# behind: the next wait in the same session sleeps and wakes as well.
run2=$(q "SELECT orchestration.start_workflow(1, 'gated')")
q "SELECT orchestration.wait_for_run($run2, 30)" >/dev/null
started=$SECONDS
is "$(psql -X -q -At -c "SET statement_timeout = '1s'" -c "SELECT orchestration.wait_for_run($run2, 60, 'finished')" 2>&1 | grep -o 'canceling statement due to statement timeout')" \
   "canceling statement due to statement timeout" "statement_timeout ends a wait"
ok "$([ $((SECONDS - started)) -lt 10 ]; echo $?)" "at once, not after the 60 s timeout"
# Many waits at once (the cluster allows 100 connections; up to 128 waits are woken at
# commit, more would poll every 50 ms): all are woken by the one commit.
pids=()
for i in $(seq 1 60); do
  psql -X -q -At -c "SELECT orchestration.wait_for_run($run2, 30, 'finished')->>'status'" >"$out.$i" 2>&1 &
  pids+=($!)
done
wait_for 20 "SELECT count(*) >= 60 FROM pg_stat_activity WHERE query LIKE '%wait_for_run($run2, 30%' AND state = 'active'" ||
  echo "# not all waiters started"
approval=$(q "SELECT id FROM orchestration.workflow_approvals WHERE run_id = $run2 AND status = 'PENDING'")
q "SELECT orchestration.approve($approval)" >/dev/null
wait "${pids[@]}"
is "$(cat "$out".* | sort | uniq -c | sed 's/^ *//')" "60 SUCCESS" "60 waiters at once all see the run finish"
rm -f "$out" "$out".*

done_testing
