#!/usr/bin/env bash
# What operators see: metrics() parses as Prometheus exposition format and counts what the
# tables hold; run_graph() renders with Graphviz's dot to a PNG; a caller's traceparent
# flows from start_workflow's context into the container's environment (as a child span
# of the same trace) and into the events.
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
is "$(q "SELECT string_agg(DISTINCT payload->'data'->>'traceparent', ',') FROM orchestration.events WHERE run_id = $run AND type LIKE 'orchestration.run.%'")" "$parent" \
   "the run's events carry the caller's traceparent"

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

rm -rf "$out"
q "ALTER SYSTEM RESET orchestration.allowed_images"
q "SELECT pg_reload_conf()" >/dev/null
done_testing
