#!/usr/bin/env bash
# Events reach NATS exactly as they happened: a run's CloudEvents on a JetStream consumer,
# in order, equal to the outbox rows; nothing from a rolled-back transaction (neither on
# NATS nor through NOTIFY); LISTEN in psql sees the notifications; a NATS message on a
# trigger subject starts its workflow, a malformed one starts nothing and is answered and
# logged; subscriptions follow workflow changes without a restart; the core-NATS fallback.
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }
wait_for 30 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration relay' AND datname = current_database()" ||
  { echo "Bail out! no relay connected to $PGDATABASE"; exit 1; }
"$NATS_PROBE" purge "$NATS_URL" ORCHESTRATION
LOG=$DATA/log/postgresql.log

q "CREATE FUNCTION public.ping(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT jsonb_build_object('pong', input) \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"ping\", \"type\": \"RULE\", \"function\": \"public.ping\", \"capabilities\": [{\"name\": \"ping\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"chain\", \"nodes\": [{\"id\": \"a\", \"agent\": \"ping\", \"action\": \"ping\"}, {\"id\": \"b\", \"agent\": \"ping\", \"action\": \"ping\", \"depends_on\": [\"a\"]}]}')" >/dev/null
all_published="SELECT count(*) = 0 FROM orchestration.events WHERE published_at IS NULL"

# --- a run's events, on a JetStream consumer -------------------------------------------
run=$(q "SELECT orchestration.start_workflow(1, 'chain', '{\"traceparent\": \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}')")
is "$(q "SELECT orchestration.wait_for_run($run, '30 seconds')->>'status'")" "SUCCESS" "the chain run succeeds"
ok "$(wait_for 20 "$all_published"; echo $?)" "the relay marks every event published"
outbox=$(q "SELECT json_agg(payload ORDER BY id) FROM orchestration.events WHERE run_id = $run")
stream=$(stream_events "orchestration.1.>")
run_span=$(q "SELECT traceparent FROM orchestration.workflow_runs WHERE id = $run")
check=$(python3 - "$run" "$outbox" "$stream" "$run_span" <<'PY'
import json, re, sys
run, outbox, lines, run_span = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3].splitlines(), sys.argv[4]
msgs = [json.loads(l) for l in lines]
msgs = [m for m in msgs if m["event"]["data"].get("run_id") == run]
problems = []
types = [m["event"]["type"] for m in msgs]
expected = ["orchestration.run.created", "orchestration.run.started", "orchestration.node.succeeded",
            "orchestration.node.succeeded", "orchestration.run.succeeded"]
if types != expected: problems.append("types %s" % types)
if [m["event"] for m in msgs] != outbox: problems.append("stream events differ from the outbox rows")
seqs = [m["seq"] for m in msgs]
if seqs != sorted(seqs): problems.append("out of stream order")
for m in msgs:
    e = m["event"]
    if e.get("specversion") != "1.0": problems.append("specversion")
    if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", e.get("id", "")): problems.append("id")
    if m["msg_id"] != e.get("id"): problems.append("Nats-Msg-Id is not the event id")
    if e.get("source") != "/orchestration/orchestration_test/1": problems.append("source " + str(e.get("source")))
    entity_event = e["type"][len("orchestration."):]
    if m["subject"] != "orchestration.1." + entity_event: problems.append("subject " + m["subject"])
    node = e["data"].get("node_key")
    if e.get("subject") != "run/%d" % run + ("/node/" + node if node else ""): problems.append("subject " + e.get("subject"))
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e.get("time", "")): problems.append("time")
    if e.get("datacontenttype") != "application/json": problems.append("datacontenttype")
    # The run's span, in the caller's trace.
    if e["data"].get("traceparent") != run_span or not run_span.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-"):
        problems.append("traceparent")
if [m["event"]["data"].get("node_key") for m in msgs[2:4]] != ["a", "b"]: problems.append("node order")
if len({m["msg_id"] for m in msgs}) != len(msgs): problems.append("a duplicate")
print("; ".join(problems) or "ok")
PY
)
is "$check" "ok" "JetStream holds exactly the run's 5 events (created, started, a, b, succeeded), equal to the outbox, in order, valid CloudEvents"

# --- rollback: nothing on NATS, nothing through NOTIFY; LISTEN sees committed events ---
# With orchestration.notify_details on, notifications name the event (by default they are
# empty: containment.sh checks that).
q "ALTER SYSTEM SET orchestration.notify_details = on"
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
listen_out=$(mktemp)
{ echo "LISTEN orchestration_events;"; sleep 3; echo "SELECT 'done';"; } | psql -X -q >"$listen_out" 2>&1 &
listener=$!
sleep 1
rolled_back=$(psql -X -q -At -v ON_ERROR_STOP=1 -c "BEGIN" -c "SELECT orchestration.start_workflow(1, 'chain')" -c "ROLLBACK")
committed=$(q "SELECT orchestration.start_workflow(1, 'chain')")
q "SELECT orchestration.wait_for_run($committed, '30 seconds')" >/dev/null
wait $listener
ok "$(grep -q "\"run_id\" : $committed" "$listen_out"; echo $?)" "psql LISTEN orchestration_events sees the committed run's notifications"
is "$(grep -c "\"type\" : \"orchestration.run.created\", \"run_id\" : $committed" "$listen_out")" "1" \
   "one run.created notification for it, with id, type and run id"
is "$(grep -c "\"run_id\" : $rolled_back\b" "$listen_out")" "0" "no notification for the rolled-back run $rolled_back"
is "$(q "SELECT count(*) FROM orchestration.events WHERE run_id = $rolled_back")" "0" "no outbox row for it"
ok "$(wait_for 20 "$all_published"; echo $?)" "the committed run's events are published"
runs_on_nats=$(stream_events "orchestration.1.run.created" | python3 -c '
import json, sys
print(" ".join(str(json.loads(l)["event"]["data"]["run_id"]) for l in sys.stdin))')
is "$runs_on_nats" "$run $committed" "run.created reached NATS for the committed runs only, not for run $rolled_back"
rm -f "$listen_out"
q "ALTER SYSTEM RESET orchestration.notify_details"
q "SELECT pg_reload_conf()" >/dev/null

# --- inbound: a NATS message on a trigger subject starts the workflow --------------------
relay_before=$(relay_pid)
q "SELECT orchestration.create_workflow(1, '{\"name\": \"orders\", \"trigger\": {\"type\": \"nats\", \"subject\": \"orders.*.created\"}, \"nodes\": [{\"id\": \"a\", \"agent\": \"ping\", \"action\": \"ping\", \"inputs\": {\"order\": \"{{ context.order }}\"}}]}')" >/dev/null
answer=""
for _ in $(seq 50); do  # until the relay has subscribed (it is woken by the commit)
  answer=$("$NATS_PROBE" request "$NATS_URL" orders.eu.created '{"order": 7}' 500 2>/dev/null) && break
  sleep 0.1
done
nats_run=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["run_ids"][0])' "$answer" 2>/dev/null)
ok "$([ -n "$nats_run" ]; echo $?)" "a request on orders.eu.created is answered with the run it started ($answer)"
is "$(q "SELECT orchestration.wait_for_run(${nats_run:-0}, '30 seconds')->>'status'")" "SUCCESS" "that run succeeds"
is "$(q "SELECT trigger || ' ' || context::text FROM orchestration.workflow_runs WHERE id = ${nats_run:-0}")" 'nats {"order": 7}' \
   "it was started by NATS with the message as its context"
is "$(q "SELECT output->'pong'->>'order' FROM orchestration.workflow_run_nodes WHERE run_id = ${nats_run:-0}")" "7" \
   "the node saw the message's field through its template"

runs_before=$(q "SELECT count(*) FROM orchestration.workflow_runs")
answer=$("$NATS_PROBE" request "$NATS_URL" orders.eu.created 'this is not json' 2000)
ok "$(echo "$answer" | grep -q '"error": "the message on \\"orders.eu.created\\" is not JSON'; echo $?)" \
   "a malformed message is answered with an error ($answer)"
answer=$("$NATS_PROBE" request "$NATS_URL" orders.eu.created '[1, 2]' 2000)
ok "$(echo "$answer" | grep -q 'not an object'; echo $?)" "a JSON message that is not an object is refused too"
"$NATS_PROBE" publish "$NATS_URL" orders.us.created '{broken'
sleep 1
is "$(q "SELECT count(*) FROM orchestration.workflow_runs")" "$runs_before" "malformed messages start nothing"
ok "$(grep -q 'a trigger message on "orders.us.created" started nothing: the message on "orders.us.created" is not JSON' "$LOG"; echo $?)" \
   "a malformed message without a reply subject is reported in the server log"

# --- subscriptions follow workflow changes, without a restart ---------------------------
q "SELECT orchestration.archive_workflow(id) FROM orchestration.workflows WHERE name = 'orders'" >/dev/null
gone=1
for _ in $(seq 50); do
  "$NATS_PROBE" request "$NATS_URL" orders.eu.created '{"order": 8}' 300 >/dev/null 2>&1 || { gone=0; break; }
  sleep 0.1
done
ok "$gone" "after archive_workflow nobody answers on orders.eu.created (unsubscribed)"
q "SELECT orchestration.create_workflow(1, '{\"name\": \"refunds\", \"trigger\": {\"type\": \"nats\", \"subject\": \"refunds.>\"}, \"nodes\": [{\"id\": \"a\", \"agent\": \"ping\", \"action\": \"ping\"}]}')" >/dev/null
answer=""
for _ in $(seq 50); do
  answer=$("$NATS_PROBE" request "$NATS_URL" refunds.eu.big '{"refund": 1}' 500 2>/dev/null) && break
  sleep 0.1
done
ok "$(echo "$answer" | grep -q '"run_ids": \['; echo $?)" "a new workflow's subject (refunds.>) starts runs at once ($answer)"
is "$(relay_pid)" "$relay_before" "the same relay process did all this (no restart)"

# --- an event larger than the server's max_payload -----------------------------------------
# A 2 MB output makes a 2 MB node.succeeded event; NATS (max_payload 1 MiB) would refuse it,
# and every later event of every project would wait behind it. It goes out reduced.
q "CREATE FUNCTION public.big(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT jsonb_build_object('blob', repeat('x', 2000000)) \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"big\", \"type\": \"RULE\", \"function\": \"public.big\", \"capabilities\": [{\"name\": \"go\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"big\", \"nodes\": [{\"id\": \"a\", \"agent\": \"big\", \"action\": \"go\"}]}')" >/dev/null
big_run=$(q "SELECT orchestration.start_workflow(1, 'big')")
q "SELECT orchestration.wait_for_run($big_run, '30 seconds')" >/dev/null
after_run=$(q "SELECT orchestration.start_workflow(1, 'chain')")
q "SELECT orchestration.wait_for_run($after_run, '30 seconds')" >/dev/null
ok "$(wait_for 20 "$all_published"; echo $?)" "the outbox drains past an event larger than max_payload"
big_row=$(q "SELECT id FROM orchestration.events WHERE run_id = $big_run AND type = 'orchestration.node.succeeded'")
check=$(stream_events "orchestration.1.>" | python3 -c '
import json, sys
big, after, row = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
msgs = [json.loads(l) for l in sys.stdin]
node = [m["event"] for m in msgs if m["event"]["data"].get("run_id") == big and m["event"]["type"] == "orchestration.node.succeeded"]
later = [m for m in msgs if m["event"]["data"].get("run_id") == after]
problems = []
if len(node) != 1: problems.append("%d node.succeeded events of the big run" % len(node))
else:
    e = node[0]
    if e["data"].get("truncated") is not True or e.get("dataref") != "orchestration.events/" + row: problems.append("not reduced: %s" % json.dumps(e)[:200])
    if e["data"].get("node_key") != "a" or e["data"].get("status") != "SUCCESS" or "output" in e["data"]: problems.append("data %s" % e["data"])
if len(later) != 5: problems.append("%d events of the run after it" % len(later))
print("; ".join(problems) or "ok")' "$big_run" "$after_run" "$big_row")
is "$check" "ok" "it is on NATS reduced (envelope, identifying data, truncated, dataref to its row), and the next run's 5 events follow"
is "$(q "SELECT length(payload->'data'->'output'->>'blob') FROM orchestration.events WHERE id = $big_row")" "2000000" "the outbox row keeps the whole event"

# --- the core NATS fallback ---------------------------------------------------------------
q "ALTER SYSTEM SET orchestration.nats_jetstream = off"
q "SELECT pg_reload_conf()" >/dev/null
sleep 1
core_run=$(q "SELECT orchestration.start_workflow(1, 'chain')")
q "SELECT orchestration.wait_for_run($core_run, '30 seconds')" >/dev/null
ok "$(wait_for 20 "$all_published"; echo $?)" "with nats_jetstream = off events are still published (core publish + flush)"
count=$(stream_events "orchestration.1.>" | python3 -c '
import json, sys
print(sum(1 for l in sys.stdin if json.loads(l)["event"]["data"].get("run_id") == int(sys.argv[1])))' "$core_run")
is "$count" "5" "and reach subscribers (here the stream, which also captures core publishes)"
q "ALTER SYSTEM RESET orchestration.nats_jetstream"
q "SELECT pg_reload_conf()" >/dev/null

done_testing
