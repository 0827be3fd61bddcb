#!/usr/bin/env bash
# Nothing is lost or duplicated across faults:
#  1. nats-server is killed (-9) while 1,000 events are being produced and comes back 10 s
#     later: a JetStream consumer gets all 1,000, each once, in order. Meanwhile the
#     scheduler goes on; with event_retention 0, published events are pruned at once but
#     unpublished ones stay until NATS has them.
#  2. the relay is killed (-9) in the middle of publishing 1,000 events (the postmaster
#     then restarts every process): after the restart none is lost and none is in the
#     stream twice (the re-sent ones are dropped by JetStream's duplicate window).
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }
wait_for 30 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration relay' AND datname = current_database()" ||
  { echo "Bail out! no relay connected to $PGDATABASE"; exit 1; }
"$NATS_PROBE" purge "$NATS_URL" ORCHESTRATION
trap '"$ROOT/scripts/nats.sh" start >/dev/null' EXIT  # whatever happens, leave NATS running

q "CREATE FUNCTION public.ping(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"ping\", \"type\": \"RULE\", \"function\": \"public.ping\", \"capabilities\": [{\"name\": \"ping\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"ping\", \"nodes\": [{\"id\": \"a\", \"agent\": \"ping\", \"action\": \"ping\"}]}')" >/dev/null
# The events of these tests belong to one run; emit_event is what every state change calls.
run=$(q "SELECT orchestration.start_workflow(1, 'ping')")
q "SELECT orchestration.wait_for_run($run, '30 seconds')" >/dev/null
all_published="SELECT count(*) = 0 FROM orchestration.events WHERE published_at IS NULL"

# check_stream BATCH N: the stream's test.tick events of BATCH are exactly 1..N, in order, once each.
check_stream() {
  stream_events "orchestration.1.test.tick" | python3 -c '
import json, sys
batch, n = sys.argv[1], int(sys.argv[2])
msgs = [json.loads(l) for l in sys.stdin]
seqs = [m["event"]["data"]["seq"] for m in msgs if m["event"]["data"].get("batch") == batch]
ids = [m["msg_id"] for m in msgs if m["event"]["data"].get("batch") == batch]
dups = len(ids) - len(set(ids))
if seqs == list(range(1, n + 1)): print("all %d, in order, once each" % n)
else:
    missing = sorted(set(range(1, n + 1)) - set(seqs))
    print("%d received, %d missing (first %s), %d duplicates, in order: %s"
          % (len(seqs), len(missing), missing[:5], dups, seqs == sorted(seqs)))' "$1" "$2"
}

# --- 1. NATS killed for 10 s while 1,000 events are produced --------------------------------
q "ALTER SYSTEM SET orchestration.event_retention = 0"
q "SELECT pg_reload_conf()" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
  FOR i IN 1..1000 LOOP
    PERFORM orchestration.emit_event(1, 'test', 'tick', $run, NULL, jsonb_build_object('batch', 'outage', 'seq', i));
    COMMIT;
    PERFORM pg_sleep(0.008);
  END LOOP; END \$\$" &
producer=$!
sleep 2
"$ROOT/scripts/nats.sh" kill
killed_at=$(q "SELECT count(*) FROM orchestration.events WHERE payload->'data'->>'batch' = 'outage'")
during=$(q "SELECT orchestration.start_workflow(1, 'ping')")
is "$(q "SELECT orchestration.wait_for_run($during, '30 seconds')->>'status'")" "SUCCESS" \
   "with NATS down the scheduler still runs workflows"
sleep 8
waiting=$(q "SELECT count(*) FROM orchestration.events WHERE published_at IS NULL")
produced=$(q "SELECT count(*) FROM orchestration.events WHERE payload->'data'->>'batch' = 'outage'")
ok "$([ "$waiting" -gt 0 ] && [ "$produced" -gt "$killed_at" ]; echo $?)" \
   "events were produced during the outage ($killed_at when NATS died, $produced now) and $waiting wait in the outbox"
"$ROOT/scripts/nats.sh" start >/dev/null
wait $producer
ok "$(wait_for 60 "$all_published"; echo $?)" "after NATS returns the relay publishes the backlog"
is "$(check_stream outage 1000)" "all 1000, in order, once each" \
   "the consumer receives all 1,000 events, each once, in order (so no unpublished one was pruned)"
ok "$(wait_for 10 "SELECT count(*) = 0 FROM orchestration.events WHERE payload->'data'->>'batch' = 'outage'"; echo $?)" \
   "once published, they are pruned after event_retention (0 here)"
q "ALTER SYSTEM RESET orchestration.event_retention"
q "SELECT pg_reload_conf()" >/dev/null

# --- 2. the relay killed (-9) in the middle of the stream -----------------------------------
# Publishing one event per batch (one acknowledgement, one commit each) makes the
# stream last long enough to be hit in the middle.
q "ALTER SYSTEM SET orchestration.relay_batch_size = 1"
q "SELECT pg_reload_conf()" >/dev/null
q "SELECT orchestration.emit_event(1, 'test', 'tick', $run, NULL, jsonb_build_object('batch', 'relay-kill', 'seq', i)) FROM generate_series(1, 1000) i" >/dev/null
killed=""
for _ in $(seq 200); do
  published=$(q "SELECT count(*) FROM orchestration.events WHERE published_at IS NOT NULL AND payload->'data'->>'batch' = 'relay-kill'")
  if [ "$published" -ge 100 ]; then
    pid=$(relay_pid); kill -9 "$pid" && killed=$published
    break
  fi
  sleep 0.02
done
ok "$([ -n "$killed" ] && [ "$killed" -lt 1000 ]; echo $?)" "the relay was killed mid-stream (${killed:-?} of 1000 published)"
sleep 2
wait_for 60 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration relay' AND datname = current_database()"
ok "$(wait_for 90 "$all_published"; echo $?)" "the restarted relay publishes the rest"
is "$(check_stream relay-kill 1000)" "all 1000, in order, once each" "no event lost, none twice in the stream"
q "ALTER SYSTEM RESET orchestration.relay_batch_size"
q "SELECT pg_reload_conf()" >/dev/null

done_testing
