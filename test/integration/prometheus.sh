#!/usr/bin/env bash
# The Prometheus endpoint: with orchestration.metrics_listen set, the metrics worker serves
# GET /metrics; a real Prometheus server (Debian's) scrapes it and its HTTP API returns the
# series with their labels; every query of the Grafana dashboard (docker/grafana) names a
# series the endpoint serves and runs in that Prometheus. Malformed requests get a 4xx, a
# slow client is cut off at its deadline while others are answered, a flood of idle
# connections cannot keep a scrape out, a burst of scrapes reads the tables once, and the
# worker survives all of it. Emptying the setting stops the serving.
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }
out=$(mktemp -d)
prometheus_pid=
cleanup() {
  [ -n "$prometheus_pid" ] && kill "$prometheus_pid" 2>/dev/null && wait "$prometheus_pid" 2>/dev/null
  q "ALTER SYSTEM RESET orchestration.metrics_listen" >/dev/null 2>&1
  q "ALTER SYSTEM RESET orchestration.allowed_images" >/dev/null 2>&1
  q "SELECT pg_reload_conf()" >/dev/null 2>&1
  rm -rf "$out"
}
trap cleanup EXIT

# The first database listed serves on the port given, the next on the one after, ...
base=55490
slot=$(q "SELECT array_position(string_to_array(replace(current_setting('orchestration.database_name'), ' ', ''), ','), current_database()) - 1")
port=$((base + slot))
url="http://127.0.0.1:$port/metrics"

is "$(curl -s -o /dev/null -w '%{http_code}' "$url")" "000" "nothing listens while orchestration.metrics_listen is empty"
is "$(q "ALTER SYSTEM SET orchestration.metrics_listen = '127.0.0.1:'" 2>&1 | sed -n 2p)" \
   'DETAIL:  "127.0.0.1:" has no port number (host:port, [ipv6]:port or port)' "a setting that does not parse is refused, saying why"
q "ALTER SYSTEM SET orchestration.metrics_listen = '127.0.0.1:$base'"
q "ALTER SYSTEM SET orchestration.allowed_images = 'orchestration/busybox:*'"
q "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 50); do curl -sf -o /dev/null "$url" && break; sleep 0.2; done
is "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$url")" "200 text/plain; version=0.0.4; charset=utf-8" \
   "after a reload, GET /metrics on port $port (base + this database's place, $slot) answers 200 in the exposition format"
pid=$(metrics_pid)

# Something to count: a run of a container node and a RULE node.
q "CREATE FUNCTION public.ping(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"ping\", \"type\": \"RULE\", \"function\": \"public.ping\", \"capabilities\": [{\"name\": \"ping\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"box\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"cat >/dev/null; echo {}\"], \"capabilities\": [{\"name\": \"run\"}]}')" >/dev/null
q "SELECT orchestration.create_workflow(1, '{\"name\": \"both\", \"nodes\": [{\"id\": \"c\", \"agent\": \"box\", \"action\": \"run\"}, {\"id\": \"p\", \"agent\": \"ping\", \"action\": \"ping\", \"depends_on\": [\"c\"]}]}')" >/dev/null
run=$(q "SELECT orchestration.start_workflow(1, 'both')")
is "$(q "SELECT orchestration.wait_for_run($run, 60)->>'status'")" "SUCCESS" "a run with a container node and a RULE node succeeds"

sleep 1.2  # an answer is reused for 1 s: this one must be read after the run
curl -s "$url" >"$out/served.txt"
ok "$(promtool check metrics <"$out/served.txt" >"$out/promtool.txt" 2>&1; echo $?)" \
   "promtool check metrics accepts what is served$(sed 's/^/ # /' "$out/promtool.txt" | tr '\n' ' ')"
is "$(grep -E '^orchestration_(runs|nodes)\{' "$out/served.txt")" "$(q "SELECT orchestration.metrics()" | grep -E '^orchestration_(runs|nodes)\{')" \
   "the endpoint serves what orchestration.metrics() returns (runs and nodes)"
is "$(grep '^orchestration_container_starts_total' "$out/served.txt")" 'orchestration_container_starts_total{project="1"} 1' \
   "containers started are counted per project"

# --- a real Prometheus scrapes it -----------------------------------------------------------
prom_port=55489
cat >"$out/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: orchestration
    static_configs:
      - targets: ['127.0.0.1:$port']
YAML
prometheus --config.file="$out/prometheus.yml" --storage.tsdb.path="$out/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$out/prometheus.log" 2>&1 &
prometheus_pid=$!
api="http://127.0.0.1:$prom_port/api/v1"
query() { curl -s --get "$api/query" --data-urlencode "query=$1"; }
up=""
for _ in $(seq 150); do
  up=$(curl -s "$api/targets" | python3 -c 'import json,sys; t=json.load(sys.stdin)["data"]["activeTargets"]; print(t[0]["health"] if t else "")' 2>/dev/null)
  [ "$up" = "up" ] && [ "$(query 'count(orchestration_runs)' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))' 2>/dev/null)" = "1" ] && break
  sleep 0.2
done
is "$up" "up" "Prometheus scrapes the endpoint: its target is up"
[ "$up" = "up" ] || sed 's/^/# /' "$out/prometheus.log" | tail -20

series=$(query '{__name__=~"orchestration_.*", job="orchestration"}' | python3 -c '
import json, sys
for s in json.load(sys.stdin)["data"]["result"]:
    m = s["metric"]
    labels = ",".join(f"{k}={v}" for k, v in sorted(m.items()) if k not in ("__name__", "job", "instance"))
    print(m["__name__"], labels, s["value"][1])' | sort)
echo "$series" | sed 's/^/# /'
ok "$(echo "$series" | grep -qx 'orchestration_runs project=1,status=SUCCESS 1'; echo $?)" \
   "Prometheus has orchestration_runs{project=\"1\",status=\"SUCCESS\"} = 1"
ok "$(echo "$series" | grep -qx 'orchestration_nodes project=1,status=SUCCESS 2'; echo $?)" \
   "and orchestration_nodes{project=\"1\",status=\"SUCCESS\"} = 2"
ok "$(echo "$series" | grep -qx 'orchestration_node_duration_seconds_count project=1 2'; echo $?)" \
   "and the node latency histogram (its _count for project 1 is 2)"
ok "$(echo "$series" | grep -qx 'orchestration_node_duration_seconds_bucket le=+Inf,project=1 2'; echo $?)" \
   "with its buckets labelled le"
ok "$(echo "$series" | grep -qx 'orchestration_container_starts_total project=1 1'; echo $?)" "and the container starts"
for gauge in orchestration_queue_depth orchestration_relay_lag_seconds orchestration_outbox_backlog \
             orchestration_running_containers orchestration_pending_approvals; do
  ok "$(echo "$series" | grep -q "^$gauge "; echo $?)" "and $gauge"
done
is "$(query 'orchestration_runs{project="1"}' | python3 -c 'import json,sys; m=json.load(sys.stdin)["data"]["result"][0]["metric"]; print(m["job"], m["instance"])')" \
   "orchestration 127.0.0.1:$port" "each series carries Prometheus's job and instance labels"

# --- the Grafana dashboard -------------------------------------------------------------------
dashboard="$ROOT/docker/grafana/pg_orchestration.json"
check=$(python3 - "$dashboard" "$out/served.txt" "$api" <<'PY'
import json, re, sys, urllib.parse, urllib.request
dash = json.load(open(sys.argv[1]))
served = {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", l).group(0)
          for l in open(sys.argv[2]) if l.strip() and not l.startswith("#")}
problems, queries = [], []
for panel in dash["panels"]:
    for target in panel.get("targets", []):
        queries.append((panel["title"], target["expr"]))
for var in dash["templating"]["list"]:
    expr = var["query"]["query"]
    queries.append(("variable " + var["name"], re.sub(r"^label_values\((.*), *\w+\)$", r"\1", expr)))
for title, expr in queries:
    names = set(re.findall(r"\borchestration_[a-z_]+", expr))
    if not names:
        problems.append(f"{title}: names no orchestration series")
    for name in names - served:
        problems.append(f"{title}: {name} is not served")
    concrete = expr.replace("$instance", ".*").replace("$project", ".*")
    answer = json.load(urllib.request.urlopen(sys.argv[3] + "/query?" + urllib.parse.urlencode({"query": concrete})))
    if answer.get("status") != "success":
        problems.append(f"{title}: Prometheus says {answer}")
for key in ("__inputs", "panels", "templating", "title", "uid", "schemaVersion"):
    if key not in dash:
        problems.append(f"no {key}: Grafana would not import it")
print("ok %d queries" % len(queries) if not problems else "; ".join(problems))
PY
)
is "$check" "ok 14 queries" "every query of the Grafana dashboard names served series and runs in Prometheus"
# From here on the tests are the only clients.
kill "$prometheus_pid"; wait "$prometheus_pid" 2>/dev/null; prometheus_pid=

# --- hostile clients -------------------------------------------------------------------------
hostile=$(python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s
def exchange(data):
    s = conn()
    s.sendall(data)
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    return reply.split(b"\r\n", 1)[0].decode(errors="replace")
print("garbage:", exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n"))
print("no version:", exchange(b"GET /metrics\r\n\r\n"))
print("huge head:", exchange(b"GET /metrics HTTP/1.1\r\nX-Fill: " + b"a" * 100000 + b"\r\n\r\n"))
print("post:", exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"))
print("other path:", exchange(b"GET /../../etc/passwd HTTP/1.1\r\n\r\n"))
# A slow client: half a request line, then nothing. Others are answered meanwhile; it gets
# a 408 when its 2 s for the request are up.
slow = conn()
slow.sendall(b"GET /met")
start = time.monotonic()
print("during slow:", exchange(b"GET /metrics HTTP/1.1\r\n\r\n"))
slow.settimeout(20)
got = slow.recv(100).split(b"\r\n", 1)[0].decode()
print("slow cut off: %s after %s s" % (got or "nothing", "<=3" if time.monotonic() - start <= 3.5 else ">3"))
# A flood: 40 connections that send nothing, one after another. Each beyond 16 pushes out
# the oldest idle one (408): 16 are held, and a scrape still gets in.
flood = []
for _ in range(40):
    flood.append(conn())
    time.sleep(0.01)
time.sleep(0.3)
print("during flood:", exchange(b"GET /metrics HTTP/1.1\r\n\r\n"))
answers = {}
for s in flood:  # at once: the held ones get a 408 of their own 2 s after their accept
    s.setblocking(False)
    try:
        line = s.recv(100).split(b"\r\n", 1)[0].decode() or "closed"
    except BlockingIOError:
        line = "held"
    answers[line] = answers.get(line, 0) + 1
print("flood:", ", ".join("%s x%d" % (k, v) for k, v in sorted(answers.items())))
for s in flood:
    s.close()
PY
)
echo "$hostile" | sed 's/^/# /'
is "$(echo "$hostile" | grep '^garbage:')" "garbage: HTTP/1.1 400 Bad Request" "binary garbage (a TLS hello) gets 400"
is "$(echo "$hostile" | grep '^no version:')" "no version: HTTP/1.1 400 Bad Request" "an HTTP/0.9 request line gets 400"
is "$(echo "$hostile" | grep '^huge head:')" "huge head: HTTP/1.1 431 Request Header Fields Too Large" "a 100 kB head gets 431, read no further than 8 kB"
is "$(echo "$hostile" | grep '^post:')" "post: HTTP/1.1 405 Method Not Allowed" "POST gets 405"
is "$(echo "$hostile" | grep '^other path:')" "other path: HTTP/1.1 404 Not Found" "another path gets 404"
is "$(echo "$hostile" | grep '^during slow:')" "during slow: HTTP/1.1 200 OK" "a scrape is answered while a slow client holds a connection"
is "$(echo "$hostile" | grep '^slow cut off:')" "slow cut off: HTTP/1.1 408 Request Timeout after <=3 s" "the slow client gets a 408 when its 2 s are up"
is "$(echo "$hostile" | grep '^during flood:')" "during flood: HTTP/1.1 200 OK" "a scrape gets in while idle connections flood the endpoint"
is "$(echo "$hostile" | grep '^flood:')" "flood: HTTP/1.1 408 Request Timeout x25, held x15" \
   "the oldest idle connections made room (408): 40 idle ones and the scrape, 16 at a time"

# A burst of 16 scrapes at once reads the tables once: the answer is reused for 1 s. The
# tables' scan counters (flushed by the worker's next commit a second later) show it.
scans() { q "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relid = 'orchestration.workflow_runs'::regclass"; }
scrape_alone() { sleep 1.2; curl -s -o /dev/null "$url"; }
scrape_alone; scrape_alone; before=$(scans)
scrape_alone; one=$(( $(scans) - before ))
ok "$([ "$one" -gt 0 ]; echo $?)" "one scrape scans workflow_runs $one time(s)"
before=$(scans)
sleep 1.2
burst=()
for i in $(seq 16); do curl -s -o "$out/burst.$i" -w '%{http_code}\n' "$url" >>"$out/burst.codes" & burst+=($!); done
wait "${burst[@]}"
scrape_alone
is "$(sort "$out/burst.codes" | uniq -c | sed 's/^ *//')" "16 200" "16 scrapes at once are all answered"
is "$(( $(scans) - before ))" "$((2 * one))" "the burst and the scrape after it read the tables twice, not 17 times"

# A scrape that cannot finish (a DDL lock on a table it reads) is cut off after 5 s: the
# client gets a 500 that says nothing more, the server log says why.
timeouts_logged() { grep -c 'pg_orchestration metrics: canceling statement due to statement timeout' "$DATA/log/postgresql.log"; }
logged_before=$(timeouts_logged)
psql -X -q -c "BEGIN" -c "LOCK TABLE orchestration.workflow_runs IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(8)" -c "COMMIT" >/dev/null 2>&1 &
locker=$!
wait_for_sleeper 8
sleep 1.2  # past the reuse of the last answer
is "$(curl -s -w ' %{http_code}' "$url")" "The metrics could not be read; the server log says why.
 500" "a scrape blocked by a lock ends after its 5 s limit with a 500"
is "$(timeouts_logged)" "$((logged_before + 1))" \
   "and the server log says it hit its statement timeout"
wait "$locker"
is "$(curl -s -o /dev/null -w '%{http_code}' "$url")" "200" "the next scrape is answered"
is "$(metrics_pid)" "$pid" "the metrics worker is the same process throughout (it never crashed)"

# A cancel that reaches a worker between rounds (pg_cancel_backend, or a scrape's timer
# that fired after its statement) is ignored, as an idle backend ignores one: it used to
# end the worker ("canceling statement due to user request"), which then restarted.
scheduler=$(scheduler_pid); relay=$(relay_pid)
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND backend_type IN
     ('pg_orchestration metrics', 'pg_orchestration scheduler', 'pg_orchestration relay')" >/dev/null
sleep 1
is "$(metrics_pid) $(scheduler_pid) $(relay_pid)" "$pid $scheduler $relay" "a cancel ends none of the metrics worker, the scheduler and the relay"
is "$(curl -s -o /dev/null -w '%{http_code}' "$url")" "200" "and scrapes are answered"

# --- off again -------------------------------------------------------------------------------
q "ALTER SYSTEM RESET orchestration.metrics_listen"
q "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 50); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = "000" ] && break; sleep 0.2; done
is "$(curl -s -o /dev/null -w '%{http_code}' "$url")" "000" "emptying orchestration.metrics_listen stops the serving"
done_testing
