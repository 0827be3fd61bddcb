#!/usr/bin/env bash
# Claims between workers. Several workers claim nodes of one run at once (the run's row
# FOR KEY SHARE, which claims share), each taking the nodes nobody holds; a run an API
# call holds (FOR UPDATE) is passed over by every claim, and hides nothing behind it.
#
# The claims are made by hand in a database no worker serves (it is not in
# orchestration.database_name), so nothing but these sessions claims anything.
source "$(dirname "$0")/lib.bash"
db=orchestration_claims
database_without_workers "$db"
is "$(q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type LIKE 'pg_orchestration%'")" "0" \
   "no worker serves $db"
q "CREATE FUNCTION public.echo(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT input \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"echo\", \"type\": \"RULE\", \"function\": \"public.echo\", \"capabilities\": [{\"name\": \"say\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, jsonb_build_object('name', 'twenty', 'nodes',
     (SELECT jsonb_agg(jsonb_build_object('id', 'n' || i, 'agent', 'echo', 'action', 'say')) FROM generate_series(1, 20) i)))" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'twenty')")

# claim KIND MAX_NODES [ONLY_PROJECT]: claim_nodes as the workers call it (no limits).
claim() { echo "SELECT count(*) FROM orchestration.claim_nodes($2, 0, 0, '{}', '$1', '{}', ${3:-NULL}, '{}')"; }
out=$(mktemp -d)
# The first RULE worker's first claim chooses the project and locks the run's first node;
# a second claim of that project, 2 s later, finds only that node again (nothing recorded
# it in between).
psql -X -q -At -c "BEGIN" -c "$(claim rule 1)" -c "SELECT pg_sleep(2)" -c "$(claim rule 100 1)" -c "COMMIT" \
  >"$out/first" 2>&1 &
first=$!
wait_for_sleeper 2
# Meanwhile a second RULE worker claims the rest of the same run, and then a scheduler
# running every kind of node (rule_workers = 0) finds nothing left.
psql -X -q -At -c "BEGIN" -c "$(claim rule 100)" -c "SELECT pg_sleep(3)" -c "COMMIT" >"$out/second" 2>&1 &
second=$!
wait_for_sleeper 3
psql -X -q -At -c "BEGIN" -c "$(claim any 100)" -c "SELECT pg_sleep(1)" -c "COMMIT" >"$out/any" 2>&1 &
any=$!
wait "$first" "$second" "$any"
is "$(cat "$out/second")" "19" "a second RULE worker claims the other 19 nodes of the run the first one is in"
is "$(cat "$out/any")" "0" "a third claim finds none left"
is "$(grep -v '^$' "$out/first" | tr '\n' ' ')" "1 1 " \
   "and the first worker's second claim finds only the node it holds"
rm -rf "$out"

# A run held by someone else (an API call, a tenant's open transaction) hides none of the
# other runs' nodes: they are claimed in full, the held run's nodes are left alone.
q "SELECT orchestration.cancel_run($run)" >/dev/null
run2=$(q "SELECT orchestration.start_workflow(1, 'twenty')")
run3=$(q "SELECT orchestration.start_workflow(1, 'twenty')")
psql -X -q -At -c "BEGIN" -c "SELECT 1 FROM orchestration.workflow_runs WHERE id = $run2 FOR UPDATE" \
  -c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null 2>&1 &
held=$!
wait_for_sleeper 3
claimed=$(mktemp)
psql -X -q -At -c "BEGIN" -c "SELECT string_agg(DISTINCT run_id::text, ',') || ' ' || count(*) FROM orchestration.claim_nodes(100, 0, 0, '{}', 'any', '{}', NULL, '{}')" \
  -c "SELECT pg_sleep(2)" -c "ROLLBACK" >"$claimed" 2>&1 &
claimer=$!
wait_for_sleeper 2
is "$(q "SELECT count(*) FROM (SELECT 1 FROM orchestration.workflow_run_nodes WHERE run_id = $run2 FOR UPDATE SKIP LOCKED) n")" "20" \
   "a claim that passed over a held run locked none of its nodes"
wait "$claimer"
is "$(cat "$claimed")" "$run3 20" "and it claimed the next run's 20 nodes"
rm -f "$claimed"
wait "$held"

# Priority: the nodes of a run started with a higher priority are claimed before those of
# runs started earlier, by every kind of claim; runs of one priority go by level and age.
q "SELECT orchestration.create_workflow(1, '{\"name\": \"one\", \"nodes\": [{\"id\": \"a\", \"agent\": \"echo\", \"action\": \"say\"}]}')" >/dev/null
q "UPDATE orchestration.workflow_runs SET status = 'CANCELLED' WHERE status <> 'CANCELLED'" >/dev/null  # the earlier runs are out of the way
first=$(q "SELECT orchestration.start_workflow(1, 'one')")
low=$(q "SELECT orchestration.start_workflow(1, 'one', priority => -5)")
second=$(q "SELECT orchestration.start_workflow(1, 'one')")
urgent=$(q "SELECT orchestration.start_workflow(1, 'one', '{}', NULL, 10)")
order="$urgent,$first,$second,$low"
for kind in rule any; do
  is "$(q "BEGIN; SELECT string_agg(run_id::text, ',') FROM orchestration.claim_nodes(10, 0, 0, '{}', '$kind', '{}', NULL, '{}'); ROLLBACK" | grep -v '^$' | head -1)" \
     "$order" "a $kind claim takes the priority 10 run first, then priority 0 by age, then -5"
done
is "$(q "BEGIN; SELECT run_id FROM orchestration.claim_nodes(1, 0, 0, '{}', 'rule', '{}', NULL, '{}'); ROLLBACK" | grep -v '^$' | head -1)" \
   "$urgent" "a claim of one node takes the urgent run's"
is "$(q "SELECT orchestration.run_json($urgent)->>'priority'")" "10" "run_json shows the priority"
is "$(q "SELECT orchestration.start_workflow(1, 'one', priority => 1001)" 2>&1 | head -1)" \
   "ERROR:  priority must be between -1000 and 1000, not 1001" "a priority out of range is refused"

# Dispatch order is the order workflow_levels shows: level, then node. With every node of
# a run made runnable by hand, one claim takes them all in that order. "late" depends on
# "scan" directly and through "mid" (its level is the longest way down: 2, not 1); "early"
# sorts first by name but has the highest level.
q "UPDATE orchestration.workflow_runs SET status = 'CANCELLED' WHERE status <> 'CANCELLED'" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"levels\", \"nodes\": [
     {\"id\": \"early\", \"agent\": \"echo\", \"action\": \"say\", \"depends_on\": [\"late\"]},
     {\"id\": \"late\", \"agent\": \"echo\", \"action\": \"say\", \"depends_on\": [\"scan\", \"mid\"]},
     {\"id\": \"mid\", \"agent\": \"echo\", \"action\": \"say\", \"depends_on\": [\"scan\"]},
     {\"id\": \"side\", \"agent\": \"echo\", \"action\": \"say\", \"depends_on\": [\"scan\"]},
     {\"id\": \"scan\", \"agent\": \"echo\", \"action\": \"say\"},
     {\"id\": \"alone\", \"agent\": \"echo\", \"action\": \"say\"}]}')" >/dev/null
levels=$(q "SELECT string_agg(node_key || '=' || level, ',') FROM orchestration.workflow_levels(orchestration.find_workflow(1, 'levels'))")
is "$levels" "alone=0,scan=0,mid=1,side=1,late=2,early=3" "workflow_levels: each node one below its deepest dependency"
run=$(q "SELECT orchestration.start_workflow(1, 'levels')")
q "UPDATE orchestration.workflow_run_nodes SET pending_deps = 0 WHERE run_id = $run" >/dev/null
for kind in rule any; do
  is "$(q "BEGIN; SELECT string_agg(c.node_key || '=' || n.level, ',' ORDER BY c.ordinality)
                  FROM orchestration.claim_nodes(10, 0, 0, '{}', '$kind', '{}', NULL, '{}') WITH ORDINALITY c
                  JOIN orchestration.workflow_run_nodes n ON n.id = c.node_id; ROLLBACK" | grep -v '^$' | head -1)" \
     "$levels" "a $kind claim dispatches the run's nodes in the order (and at the levels) workflow_levels shows"
done
PGDATABASE=postgres q "DROP DATABASE $db WITH (FORCE)" >/dev/null
done_testing
