#!/usr/bin/env bash
# What operators see: metrics() parses as Prometheus exposition format and counts what the
# tables hold; run_graph() renders with Graphviz's dot to a PNG; a caller's traceparent
# flows from start_workflow's context into the run, the container's environment and the
# events (each a span of the caller's trace); with orchestration.otlp_endpoint set, the
# spans reach a real HTTP receiver as OTLP/JSON, also after it was down for a while.
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }
q "ALTER SYSTEM SET orchestration.allowed_images = 'orchestration/busybox:*'"
q "SELECT pg_reload_conf()" >/dev/null
out=$(mktemp -d)

q "CREATE FUNCTION public.ping(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
q "CREATE FUNCTION public.boom(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'boom'; END \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"ping\", \"type\": \"RULE\", \"function\": \"public.ping\", \"capabilities\": [{\"name\": \"ping\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"boom\", \"type\": \"RULE\", \"function\": \"public.boom\", \"capabilities\": [{\"name\": \"fail\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"tracer\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"cat >/dev/null; echo {\\\\\\\"traceparent\\\\\\\": \\\\\\\"\$TRACEPARENT\\\\\\\"}\"], \"capabilities\": [{\"name\": \"trace\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"mixed\", \"nodes\": [{\"id\": \"first\", \"agent\": \"ping\", \"action\": \"ping\"}, {\"id\": \"breaks\", \"agent\": \"boom\", \"action\": \"fail\", \"depends_on\": [\"first\"]}, {\"id\": \"after\", \"agent\": \"ping\", \"action\": \"ping\", \"depends_on\": [\"breaks\"]}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"traced\", \"nodes\": [{\"id\": \"c\", \"agent\": \"tracer\", \"action\": \"trace\"}]}')" >/dev/null

# --- traceparent: context -> run -> container environment and events ---------------------
parent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
run=$(q "SELECT orchestration.start_workflow(1, 'traced', '{\"traceparent\": \"$parent\"}')")
is "$(q "SELECT orchestration.wait_for_run($run, '60 seconds')->>'status'")" "SUCCESS" "the traced container run succeeds"
seen=$(q "SELECT output->>'traceparent' FROM orchestration.workflow_run_nodes WHERE run_id = $run")
ok "$(echo "$seen" | grep -Eq '^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$' && [ "$seen" != "$parent" ]; echo $?)" \
   "the container's TRACEPARENT is a new span in the caller's trace ($seen)"
is "$(q "SELECT payload->'data'->>'traceparent' FROM orchestration.events WHERE run_id = $run AND type = 'orchestration.node.started'")" "$seen" \
   "the node.started event carries that span"
run_span=$(q "SELECT traceparent FROM orchestration.workflow_runs WHERE id = $run")
ok "$(echo "$run_span" | grep -Eq '^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$' && [ "$run_span" != "$parent" ] && [ "$run_span" != "$seen" ]; echo $?)" \
   "the run is a span of its own in the caller's trace ($run_span)"
is "$(q "SELECT string_agg(DISTINCT payload->'data'->>'traceparent', ',') FROM orchestration.events WHERE run_id = $run AND type LIKE 'orchestration.run.%'")" "$run_span" \
   "the run's events carry the run's span"
is "$(q "SELECT traceparent FROM orchestration.agent_runs WHERE run_id = $run")" "$seen" \
   "the attempt's row keeps the span its container got"
is "$(q "SELECT count(*) FROM orchestration.span_queue")" "0" "with otlp_endpoint empty no span is kept"

# --- metrics() -----------------------------------------------------------------------------
failed=$(q "SELECT orchestration.start_workflow(1, 'mixed')")
q "SELECT orchestration.wait_for_run($failed, '30 seconds')" >/dev/null
q "SELECT orchestration.metrics()" >"$out/metrics.txt"
# Debian's python3, where python3-prometheus-client is installed (not a python3 earlier on PATH).
check=$(/usr/bin/python3 - "$out/metrics.txt" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
problems = []
for name, kind in [("orchestration_runs", "gauge"), ("orchestration_nodes", "gauge"),
                   ("orchestration_node_duration_seconds", "histogram"), ("orchestration_queue_depth", "gauge"),
                   ("orchestration_running_containers", "gauge"), ("orchestration_pending_approvals", "gauge"),
                   ("orchestration_outbox_backlog", "gauge"), ("orchestration_relay_lag_seconds", "gauge")]:
    if name not in families: problems.append("missing " + name)
    elif families[name].type != kind: problems.append(name + " is " + families[name].type)
def value(family, **labels):
    for s in families[family].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()) and s.name.endswith(labels.pop("_suffix", "")):
            return s.value
runs = {(s.labels["project"], s.labels["status"]): s.value for s in families["orchestration_runs"].samples}
nodes = {(s.labels["project"], s.labels["status"]): s.value for s in families["orchestration_nodes"].samples}
if runs != {("1", "SUCCESS"): 1.0, ("1", "FAILED"): 1.0}: problems.append("runs %s" % runs)
if nodes != {("1", "SUCCESS"): 2.0, ("1", "FAILED"): 1.0, ("1", "SKIPPED"): 1.0}: problems.append("nodes %s" % nodes)
h = [s for s in families["orchestration_node_duration_seconds"].samples]
count = [s.value for s in h if s.name.endswith("_count")]
inf = [s.value for s in h if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"]
if not count or count != inf: problems.append("histogram count %s vs +Inf bucket %s" % (count, inf))
buckets = [s.value for s in h if s.name.endswith("_bucket")]
if buckets != sorted(buckets): problems.append("buckets not cumulative")
print("; ".join(problems) or "ok")
PY
)
is "$check" "ok" "metrics() parses as Prometheus exposition format (prometheus_client) and counts 2 runs, 4 nodes, a duration histogram"
is "$(q "SELECT value FROM orchestration.metric_samples WHERE metric = 'orchestration_runs' AND labels->>'status' = 'FAILED'")" "1" \
   "the metric_samples view shows the same numbers for psql"

# --- run_graph() -> dot -> PNG -------------------------------------------------------------
q "SELECT orchestration.run_graph($failed, 'dot')" >"$out/run.dot"
dot -Tpng "$out/run.dot" -o "$out/run.png" 2>"$out/dot.err"
ok "$([ -s "$out/run.png" ] && [ "$(head -c 8 "$out/run.png" | od -An -tx1 | tr -d ' ')" = "89504e470d0a1a0a" ] && [ ! -s "$out/dot.err" ]; echo $?)" \
   "run_graph(..., 'dot') renders with dot -Tpng to a PNG without warnings ($(stat -c %s "$out/run.png" 2>/dev/null) bytes)"
ok "$(grep -q 'label="breaks\\nboom.fail\\nFAILED", fillcolor="#ffcdd2"' "$out/run.dot" && grep -q 'style="rounded,filled,dashed"' "$out/run.dot"; echo $?)" \
   "nodes are labelled and coloured by status (the failed node red, the skipped one dashed)"
mermaid=$(q "SELECT orchestration.run_graph($failed)")
ok "$(echo "$mermaid" | grep -q '^flowchart TD' && echo "$mermaid" | grep -q 'n1 --> n2' && echo "$mermaid" | grep -q 'classDef FAILED fill:#ffcdd2'; echo $?)" \
   "the default is Mermaid, with edges and a class per status"
q "SELECT orchestration.workflow_graph(id, 'dot') FROM orchestration.workflows WHERE name = 'mixed'" | dot -Tpng -o "$out/workflow.png" 2>/dev/null
ok "$([ -s "$out/workflow.png" ]; echo $?)" "workflow_graph renders too"
err=$(psql -X -q -At -c "SELECT orchestration.run_graph($failed, 'svg')" 2>&1)
ok "$(echo "$err" | grep -q 'unknown graph format "svg"'; echo $?)" "an unknown format is refused with a clear error"

# --- spans to a real OTLP/HTTP receiver ----------------------------------------------------
# A receiver in the shape of an OpenTelemetry collector's OTLP/HTTP endpoint: it accepts
# POST /v1/traces with Content-Type application/json, keeps each request body (one per
# line) and answers 200 with an empty ExportTraceServiceResponse.
cat >"$out/receiver.py" <<'PY'
import http.server, sys
port, path = int(sys.argv[1]), sys.argv[2]
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/v1/traces" and self.headers["Content-Type"] == "application/json"
        if ok:
            with open(path, "ab") as f: f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
PY
otlp_port=${ORCH_OTLP_PORT:-54318}  # and the next port: the collector that never answers, below
start_receiver() { /usr/bin/python3 "$out/receiver.py" $otlp_port "$out/spans.jsonl" & receiver=$!; sleep 0.5; }
start_receiver
q "ALTER SYSTEM SET orchestration.otlp_endpoint = 'http://127.0.0.1:$otlp_port/v1/traces'"
q "SELECT pg_reload_conf()" >/dev/null
sleep 1
traced=$(q "SELECT orchestration.start_workflow(1, 'traced', '{\"traceparent\": \"$parent\"}')")
mixed=$(q "SELECT orchestration.start_workflow(1, 'mixed')")
q "SELECT orchestration.wait_for_run($traced, '60 seconds'), orchestration.wait_for_run($mixed, '60 seconds')" >/dev/null
wait_for 30 "SELECT count(*) = 0 FROM orchestration.span_queue" >/dev/null
# What the receiver got, against what the tables say.
spans_check() {  # spans_check RUN...: "ok" or what is wrong with the spans of those runs
  /usr/bin/python3 - "$out/spans.jsonl" "$(q "SELECT json_object_agg(id, json_build_object('span', traceparent, 'attempts',
      (SELECT json_agg(json_build_array(a.traceparent, a.agent_name, a.status, a.error) ORDER BY a.id)
       FROM orchestration.agent_runs a WHERE a.run_id = r.id)))
    FROM orchestration.workflow_runs r WHERE id IN ($(echo "$@" | tr ' ' ','))")" "$PGDATABASE" <<'PY'
import json, sys
requests = [json.loads(line) for line in open(sys.argv[1])]
runs, database = json.loads(sys.argv[2]), sys.argv[3]
problems, spans = [], []
for request in requests:
    for rs in request["resourceSpans"]:
        attrs = {a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]}
        if attrs != {"service.name": "pg_orchestration", "db.name": database}: problems.append("resource %s" % attrs)
        for ss in rs["scopeSpans"]: spans += ss["spans"]
def attr(span, key):
    for a in span.get("attributes", []):
        if a["key"] == key: return list(a["value"].values())[0]
by_id = {}
for s in spans:
    by_id.setdefault(s["spanId"], []).append(s)
    if not (s["startTimeUnixNano"].isdigit() and int(s["startTimeUnixNano"]) <= int(s["endTimeUnixNano"])): problems.append("times of " + s["name"])
for run_id, run in runs.items():
    trace, span_id = run["span"].split("-")[1:3]
    run_spans = by_id.get(span_id, [])
    if len(run_spans) != 1: problems.append("run %s: %d spans" % (run_id, len(run_spans))); continue
    rs = run_spans[0]
    if rs["traceId"] != trace or attr(rs, "orchestration.run_id") != run_id: problems.append("run %s span %s" % (run_id, rs))
    for tp, agent, status, error in run["attempts"]:
        found = by_id.get(tp.split("-")[2], [])
        if len(found) != 1: problems.append("attempt %s: %d spans" % (tp, len(found))); continue
        a = found[0]
        want = {"traceId": trace, "parentSpanId": span_id, "status": {"code": 1} if status == "SUCCESS" else {"code": 2, "message": error}}
        got = {k: a.get(k) for k in want}
        if got != want or not a["name"].startswith(agent + "."): problems.append("attempt %s: %s, want %s" % (a["name"], got, want))
    print(json.dumps({"run": run_id, "parent": rs.get("parentSpanId"), "status": rs["status"]["code"]}), file=sys.stderr)
print("; ".join(problems) or "ok")
PY
}
is "$(spans_check "$traced" "$mixed" 2>"$out/runs.txt")" "ok" \
   "the receiver got a span per run and per attempt: ids, parents, names, status and times as the tables say"
is "$(grep "\"run\": \"$traced\"" "$out/runs.txt")" "{\"run\": \"$traced\", \"parent\": \"b7ad6b7169203331\", \"status\": 1}" \
   "the traced run's span is a child of the caller's span"
is "$(grep "\"run\": \"$mixed\"" "$out/runs.txt")" "{\"run\": \"$mixed\", \"parent\": null, \"status\": 2}" \
   "the failed run's span is a root, with an error status"
# A retried run ends a second time: that is a span of its own (same trace), no span id is
# sent twice.
q "SELECT orchestration.retry_run($mixed)" >/dev/null
q "SELECT orchestration.wait_for_run($mixed, '60 seconds')" >/dev/null
wait_for 30 "SELECT count(*) = 0 FROM orchestration.span_queue" >/dev/null
is "$(/usr/bin/python3 - "$out/spans.jsonl" "$mixed" <<'PY'
import json, sys
ids = []
for line in open(sys.argv[1]):
    for rs in json.loads(line)["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                if s["name"].startswith("run ") and {"key": "orchestration.run_id", "value": {"intValue": sys.argv[2]}} in s.get("attributes", []):
                    ids.append(s["spanId"])
print(len(ids), len(set(ids)))
PY
)" "2 2" "a retried run that ends again is a second span with an id of its own"
# The receiver goes away: spans wait in span_queue, and go out once it is back.
kill $receiver; wait $receiver 2>/dev/null
down=$(q "SELECT orchestration.start_workflow(1, 'mixed')")
q "SELECT orchestration.wait_for_run($down, '60 seconds')" >/dev/null
wait_for 10 "SELECT count(*) = 3 FROM orchestration.span_queue" >/dev/null
ok $? "while the receiver is down the run's 3 spans (run, 2 attempts) wait in span_queue"
wait_for 10 "SELECT pg_read_file('log/postgresql.log') LIKE '%spans wait: no answer from http://127.0.0.1:$otlp_port/v1/traces%'" >/dev/null
ok $? "the relay logs why they wait"
start_receiver
wait_for 90 "SELECT count(*) = 0 FROM orchestration.span_queue" >/dev/null
ok $? "the receiver back, the waiting spans are sent"
is "$(spans_check "$down" 2>/dev/null)" "ok" "and they are the run's spans, each once"
kill $receiver; wait $receiver 2>/dev/null

# --- a collector that never answers holds back spans, not events ---------------------------
# It accepts connections (the kernel does, from the listen backlog) and never reads or
# answers: every export try lasts the relay's whole timeout (5 s). Meanwhile events must
# still reach NATS at once: each run's within 2 s of being written (a relay that waits for
# the collector itself lets them wait up to 5 s, again at every try).
cat >"$out/silent.py" <<'PY'
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(128)
time.sleep(3600)
PY
silent_port=$((otlp_port + 1))
/usr/bin/python3 "$out/silent.py" $silent_port & silent=$!
sleep 0.5
q "ALTER SYSTEM SET orchestration.otlp_endpoint = 'http://127.0.0.1:$silent_port/v1/traces'"
q "SELECT pg_reload_conf()" >/dev/null
sleep 1
hung=()
for i in 1 2 3 4 5 6 7 8; do
  r=$(q "SELECT orchestration.start_workflow(1, 'mixed')")
  q "SELECT orchestration.wait_for_run($r, '30 seconds')" >/dev/null
  hung+=("$r")
  sleep 0.7
done
runs_list=$(IFS=,; echo "${hung[*]}")
wait_for 15 "SELECT count(*) = 0 FROM orchestration.events WHERE run_id IN ($runs_list) AND published_at IS NULL" >/dev/null
late=$(q "SELECT count(*) FILTER (WHERE published_at IS NULL OR published_at - created_at > interval '2 seconds')
          || ' of ' || count(*) FROM orchestration.events WHERE run_id IN ($runs_list)")
slowest=$(q "SELECT round(extract(epoch FROM max(published_at - created_at)), 2) FROM orchestration.events WHERE run_id IN ($runs_list)")
is "${late%% *}" "0" "with a collector that never answers, every event of 8 runs reaches NATS within 2 s (late: $late; slowest: $slowest s)"
ok "$(q "SELECT count(*) > 0 FROM orchestration.span_queue" | grep -qx t; echo $?)" \
   "while their spans wait in span_queue"
q "SELECT payload->>'id' FROM orchestration.events WHERE run_id IN ($runs_list)" >"$out/hung_ids.txt"
on_nats=$(stream_events "orchestration.1.>" | python3 -c '
import json, sys
wanted = set(open(sys.argv[1]).read().split())
seen = {json.loads(line)["event"].get("id") for line in sys.stdin}
print("%d of %d" % (len(wanted & seen), len(wanted)))' "$out/hung_ids.txt")
is "$on_nats" "$(wc -l <"$out/hung_ids.txt") of $(wc -l <"$out/hung_ids.txt")" \
   "and they are in the NATS stream"
kill $silent; wait $silent 2>/dev/null
q "ALTER SYSTEM RESET orchestration.otlp_endpoint"
q "SELECT pg_reload_conf()" >/dev/null

rm -rf "$out"
q "ALTER SYSTEM RESET orchestration.allowed_images"
q "SELECT pg_reload_conf()" >/dev/null
done_testing
