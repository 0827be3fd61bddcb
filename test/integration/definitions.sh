#!/usr/bin/env bash
# Definitions changed in a transaction that stays open hold up nobody's runs, two deploy
# scripts putting the same new agent at once both get its id, and two starts with one
# idempotency key at once get one run.
#
# In a database no worker serves: starting a run is what is checked (its rows' foreign
# keys to the agent and the workflow), not running it.
source "$(dirname "$0")/lib.bash"
db=orchestration_definitions
database_without_workers "$db"
q "CREATE FUNCTION public.echo(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT input \$\$"
agent='{"name": "echo", "type": "RULE", "function": "public.echo", "capabilities": [{"name": "say"}]}'
changed='{"name": "echo", "type": "RULE", "function": "public.echo", "version": "2.0.0", "capabilities": [{"name": "say"}]}'
flow='{"name": "flow", "nodes": [{"id": "a", "agent": "echo", "action": "say"}]}'
q "SELECT orchestration.put_agent(1, '$agent')" >/dev/null
q "SELECT orchestration.put_workflow(1, '$flow')" >/dev/null

# hold SQL: run SQL in a transaction left open for 4 s, in the background.
hold() {
  psql -X -q -At -c "BEGIN" -c "$1" -c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null 2>&1 &
  held=$!
  wait_for_sleeper 4
}
# A start waits for no lock: a lock wait would fail it after 1 s.
starts() { psql -X -q -At -c "SET lock_timeout = '1s'" -c "SELECT orchestration.start_workflow(1, 'flow') > 0" 2>&1; }

for change in "put_agent(1, '$changed')" "update_agent(1, 'echo', '$agent')" "put_agent(1, '$agent')" \
              "put_workflow(1, '$flow')" "update_workflow(1, 'flow', '$flow')"; do
  hold "SELECT orchestration.$change"
  is "$(starts)" "t" "a run starts while a transaction that called ${change%%(*} (${change:0:40}...) is open"
  wait "$held"
done

# twice_at_once SQL DESCRIPTION: SQL in a transaction held open for 2 s, and SQL again
# meanwhile (it waits for the first): both must return the same.
twice_at_once() {
  local out
  out=$(mktemp)
  psql -X -q -At -c "BEGIN" -c "$1" -c "SELECT pg_sleep(2)" -c "COMMIT" >"$out.1" 2>&1 &
  local first=$!
  wait_for_sleeper 2
  psql -X -q -At -c "$1" >"$out.2" 2>&1
  wait "$first"
  is "$(grep -v '^$' "$out.2")" "$(grep -v '^$' "$out.1")" "$2"
  rm -f "$out" "$out".*
}

# Two puts of a new agent at once: the second waits for the first, then finds its agent.
new='{"name": "fresh", "type": "RULE", "function": "public.echo", "capabilities": [{"name": "say"}]}'
twice_at_once "SELECT orchestration.put_agent(1, '$new')" \
  "a concurrent put of the same new agent returns the same id (not 'already exists')"

# Two starts with one idempotency key at once (a caller retrying while its first try is
# still in flight): the second waits for the first, then returns its run.
twice_at_once "SELECT orchestration.start_workflow(1, 'flow', '{}', 'retry-1')" \
  "a concurrent start with the same idempotency key returns the first start's run"
is "$(q "SELECT count(*) FROM orchestration.workflow_runs WHERE idempotency_key = 'retry-1'")" "1" "and there is one run with that key"

PGDATABASE=postgres q "DROP DATABASE $db WITH (FORCE)" >/dev/null
done_testing
