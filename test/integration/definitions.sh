#!/usr/bin/env bash
# Definitions changed in a transaction that stays open hold up nobody's runs, two deploy
# scripts putting the same new agent at once both get its id, and two starts with one
# idempotency key at once get one run. Levels of a large graph are computed in polynomial
# time (200 diamonds in series), and cycles are refused.
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

# Levels come from a recursive CTE (store_workflow_nodes) that keeps one row per node per
# level: 200 diamonds in series (a -> b, a -> c, b -> d, c -> d, each d the next a; 2^200
# paths end to end) are defined well within the 5 s statement timeout, which anything
# walking paths would exceed. The time is printed, not asserted (the machine may be busy).
diamonds="SELECT orchestration.create_workflow(1, jsonb_build_object('name', 'diamonds', 'nodes',
  jsonb_build_array(jsonb_build_object('id', 'a0', 'agent', 'echo', 'action', 'say'))
  || (SELECT jsonb_agg(node ORDER BY i, part) FROM generate_series(0, 199) i, LATERAL (VALUES
       (1, jsonb_build_object('id', 'b' || i, 'agent', 'echo', 'action', 'say', 'depends_on', jsonb_build_array('a' || i))),
       (2, jsonb_build_object('id', 'c' || i, 'agent', 'echo', 'action', 'say', 'depends_on', jsonb_build_array('a' || i))),
       (3, jsonb_build_object('id', 'a' || (i + 1), 'agent', 'echo', 'action', 'say',
                              'depends_on', jsonb_build_array('b' || i, 'c' || i)))) v(part, node)))) > 0"
started=$(date +%s%N)
out=$(psql -X -q -At -v ON_ERROR_STOP=1 -c "SET statement_timeout = '5s'" -c "$diamonds" 2>&1)
elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
is "$out" "t" "200 diamonds in series are defined within the 5 s statement timeout"
echo "# create_workflow of 200 diamonds in series (601 nodes, 800 edges): ${elapsed_ms} ms"
# a_i is at level 2i (two edges down per diamond), b_i and c_i at 2i + 1: the last node at 400.
is "$(q "SELECT level FROM orchestration.workflow_levels(orchestration.find_workflow(1, 'diamonds')) WHERE node_key = 'a200'")" \
   "400" "the last node of 200 diamonds is at level 400"
is "$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE level = CASE WHEN node_key LIKE 'a%' THEN 2 * substr(node_key, 2)::integer
                                                                   ELSE 2 * substr(node_key, 2)::integer + 1 END)
         FROM orchestration.workflow_levels(orchestration.find_workflow(1, 'diamonds'))")" \
   "601 601" "and every one of the 601 nodes is at its depth"
# update_workflow stores them again (the same function): the levels follow the new edges.
q "SELECT orchestration.update_workflow(orchestration.find_workflow(1, 'diamonds'), '{\"name\": \"diamonds\", \"nodes\": [
     {\"id\": \"x\", \"agent\": \"echo\", \"action\": \"say\", \"depends_on\": [\"y\"]},
     {\"id\": \"y\", \"agent\": \"echo\", \"action\": \"say\"}]}')" >/dev/null
is "$(q "SELECT string_agg(node_key || '=' || level, ',') FROM orchestration.workflow_levels(orchestration.find_workflow(1, 'diamonds'))")" \
   "y=0,x=1" "update_workflow recomputes the levels"
# A cycle is still refused at definition time, named node by node (the C++ check).
is "$(q "SELECT orchestration.create_workflow(1, '{\"name\": \"loop\", \"nodes\": [
          {\"id\": \"a\", \"agent\": \"echo\", \"action\": \"say\", \"depends_on\": [\"c\"]},
          {\"id\": \"b\", \"agent\": \"echo\", \"action\": \"say\", \"depends_on\": [\"a\"]},
          {\"id\": \"c\", \"agent\": \"echo\", \"action\": \"say\", \"depends_on\": [\"b\"]}]}')" 2>&1 | head -1)" \
   "ERROR:  invalid workflow spec: the nodes a -> b -> c -> a form a cycle (each runs after the one before it)" \
   "a cycle is refused, and named"

PGDATABASE=postgres q "DROP DATABASE $db WITH (FORCE)" >/dev/null
done_testing
