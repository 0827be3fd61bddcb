#!/usr/bin/env bash
# The scheduler's benchmarks: each workload's figure beside a baseline measured in the same
# run on the same machine, and their ratio (these machines are noisy: the ratio is what to
# compare). Median of 3 repetitions after a warm-up; --smoke: tiny sizes, one repetition
# (scripts/test.sh runs that, so the benchmark cannot rot); --profile: also record the
# RULE workers and the scheduler with perf (Debian's linux-perf) during one chain run and
# print the top entries of the profile.
#
#   test/bench/scheduler_bench.sh [--smoke] [--profile]
#
# Needs the test set-up running (scripts/test.sh leaves nothing running; run
# scripts/cluster.sh start, scripts/dockerd.sh start and docker/agents/build-test-image.sh
# first, or use scripts/bench.sh, which does). Uses the database orchestration_bench
# (recreated) and pgbench's own database orchestration_pgbench.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
eval "$("$ROOT/scripts/cluster.sh" env)"
SMOKE=0; PROFILE=0
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    --profile) PROFILE=1 ;;
    *) echo "usage: $0 [--smoke] [--profile]" >&2; exit 2 ;;
  esac
done
if [ $SMOKE = 1 ]; then
  N=20; REPS=1; WARMUP=0; LAT_RUNS=10; CONTAINERS=4; HISTORY=10000; PGBENCH_S=2; ACTIVE=100; MANY_ACTIVE=300
else
  N=1000; REPS=3; WARMUP=1; LAT_RUNS=200; CONTAINERS=100; HISTORY=1000000; PGBENCH_S=10; ACTIVE=1000; MANY_ACTIVE=10000
fi
DB=orchestration_bench
export PGDATABASE=$DB
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
rows=()
breakdown=()  # lines printed under the table: where the time went
row() { rows+=("$(printf '| %s | %s | %s | %s |' "$1" "$2" "$3" "$4")"); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", (b > 0 ? a / b : 0) }'; }

# --- set-up: a fresh database (its scheduler is in orchestration.database_name) ------------
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null || exit 1
q "CREATE EXTENSION pg_orchestration"
for _ in $(seq 100); do
  [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_orchestration scheduler' AND datname = '$DB'")" = 1 ] && break
  sleep 0.2
done
q "CREATE FUNCTION public.noop(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"noop\", \"type\": \"RULE\", \"function\": \"public.noop\", \"capabilities\": [{\"name\": \"run\"}]}')" >/dev/null
q "SELECT orchestration.register_agent(1, '{\"name\": \"true\", \"type\": \"SCRIPT\", \"image\": \"orchestration/busybox:test\", \"command\": [\"sh\", \"-c\", \"echo {}\"], \"capabilities\": [{\"name\": \"run\"}]}')" >/dev/null
node() { printf '{"id": "n%s", "agent": "%s", "action": "run"%s}' "$1" "$2" "$3"; }
define() {  # define NAME NODES-JSON
  q "SELECT orchestration.create_workflow(1, \$j\${\"name\": \"$1\", \"nodes\": $2}\$j\$)" >/dev/null
}
define chain "$(q "SELECT json_agg(json_build_object('id', 'n' || i, 'agent', 'noop', 'action', 'run', 'depends_on',
                  CASE WHEN i > 1 THEN json_build_array('n' || (i - 1)) ELSE '[]' END) ORDER BY i) FROM generate_series(1, $N) i")"
define wide "$(q "SELECT json_agg(x) FROM (SELECT json_build_object('id', 'n' || i, 'agent', 'noop', 'action', 'run') x
                  FROM generate_series(1, $N) i UNION ALL
                  SELECT json_build_object('id', 'last', 'agent', 'noop', 'action', 'run',
                         'depends_on', (SELECT json_agg('n' || i) FROM generate_series(1, $N) i))) s")"
define one "[$(node 1 noop '')]"
define hop "[$(node 1 noop ''), $(node 2 noop ', "depends_on": ["n1"]')]"
define containers "$(q "SELECT json_agg(json_build_object('id', 'n' || i, 'agent', 'true', 'action', 'run')) FROM generate_series(1, $CONTAINERS) i")"
define container "[$(node 1 true '')]"
# A run that stays active: its node waits for an approval.
define gate "[$(node 1 noop ', "approval_required": true')]"
# Twenty RULE nodes in a chain, each returning about 1 MB of JSON (orchestration.max_output_bytes).
q "CREATE FUNCTION public.bulky(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT jsonb_build_object('blob', repeat('x', 1000000)) \$\$"
q "SELECT orchestration.register_agent(1, '{\"name\": \"bulky\", \"type\": \"RULE\", \"function\": \"public.bulky\", \"capabilities\": [{\"name\": \"run\"}]}')" >/dev/null
define bulky "$(q "SELECT json_agg(json_build_object('id', 'n' || i, 'agent', 'bulky', 'action', 'run', 'depends_on',
                   CASE WHEN i > 1 THEN json_build_array('n' || (i - 1)) ELSE '[]' END) ORDER BY i) FROM generate_series(1, 20) i")"
q "ALTER SYSTEM SET orchestration.max_concurrent_nodes = 4"
q "SELECT pg_reload_conf()" >/dev/null

# Runs a workflow once; prints the seconds from the run's creation to its end. The run is
# created by a session that has called start_workflow once already (the one-node
# workflow, rolled back: it leaves one dead row, not a copy of the measured run's): a
# session's first call costs about 15 ms more than its next ones (PL/pgSQL compiled,
# catalog caches filled, plans made, whatever the workflow). That is a new connection's
# cost, which the latency rows report, not the scheduler's, and pgbench's baselines (ten
# seconds of one session each) do not carry it either. COLD=1: created by a new session's
# first call (the method before session 19).
run_seconds() {
  local run
  if [ "${COLD:-0}" = 1 ]; then
    run=$(q "SELECT orchestration.start_workflow(1, '$1')")
  else
    run=$(psql -X -q -At -v ON_ERROR_STOP=1 <<SQL | tail -1
BEGIN;
SELECT orchestration.start_workflow(1, 'one') \g /dev/null
ROLLBACK;
SELECT orchestration.start_workflow(1, '$1');
SQL
)
  fi
  q "SELECT orchestration.wait_for_run($run, '600 seconds')" >/dev/null
  q "SELECT extract(epoch FROM finished_at - created_at) FROM orchestration.workflow_runs WHERE id = $run AND status = 'SUCCESS'"
}
# The median of N values on stdin; fails (nothing printed) if fewer came: a run that did not
# succeed prints no figure, and must fail the benchmark rather than leave a row of nonsense.
median_of() {  # median_of N WHAT
  local values; values=$(grep . || true)
  local got; got=$(grep -c . <<<"$values")
  [ "$got" -eq "$1" ] || { echo "scheduler_bench: $2: $got of $1 measurements succeeded" >&2; return 1; }
  median <<<"$values"
}
# After the warm-up the tables are vacuumed, as pgbench -i leaves its own for the baseline:
# new tables grow a page at a time (every update of a node is a new row version), until
# autovacuum's first pass lets them reuse space. The first chains of a new database ran
# 10-25% slower than those after it.
repeat_median() {  # repeat_median WORKFLOW: median seconds over REPS after WARMUP
  for _ in $(seq $WARMUP); do run_seconds "$1" >/dev/null; done
  q "VACUUM (ANALYZE) orchestration.workflow_runs, orchestration.workflow_run_nodes, orchestration.agent_runs, orchestration.events" >/dev/null
  for _ in $(seq $REPS); do run_seconds "$1"; done | median_of $REPS "workflow $1"
}

# --- baselines: pgbench on the same server -----------------------------------------------
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS orchestration_pgbench" -c "CREATE DATABASE orchestration_pgbench" >/dev/null
pgbench -q -i -s $PGBENCH_S orchestration_pgbench >/dev/null 2>&1
pgbench_run() {  # pgbench_run CLIENTS [-C]: prints "tps latency_ms"
  pgbench -N -c "$1" -j "$1" ${2:-} -T $([ $SMOKE = 1 ] && echo 2 || echo 10) orchestration_pgbench 2>/dev/null |
    awk '/^latency average/ {lat=$4} /^tps/ {tps=$3} END {print tps, lat}'
}
read -r tps1 lat1 <<<"$(pgbench_run 1)"
read -r tps4 _ <<<"$(pgbench_run 4)"

# --- chain, wide ------------------------------------------------------------------------------
# The RULE workers' minor page faults and CPU so far, summed: "FAULTS CPU_NS". A page fault
# costs about 10 µs on the virtual machines this runs on, so their count is printed beside
# what chain-1000 cost a node (worker_main.cpp: keep_freed_memory).
rule_worker_counters() {
  local pid faults=0 cpu=0 f c
  for pid in $(q "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND backend_type = 'pg_orchestration rule worker'"); do
    f=$(awk '{print $10}' "/proc/$pid/stat" 2>/dev/null) || continue
    c=$(cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}')
    faults=$((faults + f)); cpu=$((cpu + c))
  done
  echo "$faults $cpu"
}
read -r faults_before cpu_before <<<"$(rule_worker_counters)"
chain_s=$(repeat_median chain) || exit 1
read -r faults_after cpu_after <<<"$(rule_worker_counters)"
breakdown+=("$(awk -v size=$N -v f=$((faults_after - faults_before)) -v c=$((cpu_after - cpu_before)) -v n=$((N * (WARMUP + REPS))) \
  'BEGIN {printf "chain-%d, its warm-up and repetitions: the RULE workers used %.0f µs of CPU and had %.2f minor page faults a node", size, c / 1000 / n, f / n}')")
chain_rate=$(awk -v n=$N -v s="$chain_s" 'BEGIN {printf "%.0f", n / s}')
row "chain-$N (RULE nodes/s)" "$chain_rate" "$(printf '%.0f' "$tps1") tx/s (pgbench -N -c 1)" "$(ratio "$chain_rate" "$tps1")"
wide_s=$(repeat_median wide) || exit 1
wide_rate=$(awk -v n=$((N + 1)) -v s="$wide_s" 'BEGIN {printf "%.0f", n / s}')
row "wide-$N (RULE nodes/s)" "$wide_rate" "$(printf '%.0f' "$tps4") tx/s (pgbench -N -c 4)" "$(ratio "$wide_rate" "$tps4")"
cold_wide_s=$(COLD=1 repeat_median wide) || exit 1
cold_wide_rate=$(awk -v n=$((N + 1)) -v s="$cold_wide_s" 'BEGIN {printf "%.0f", n / s}')
breakdown+=("wide-$N created by a new session's first call (the method before session 19): $cold_wide_rate nodes/s, $(ratio "$cold_wide_rate" "$tps4") pgbench -N -c 4")

# --- latency and hop, as a caller sees them --------------------------------------------
# A client process on its own connection calls start_workflow and commits; from just before
# the call to the node's SUCCESS (test/bench/caller_latency.py, which also says where the
# time went): to the node's end as stamped (finished_at), and to the moment the caller's
# wait_for_run returns with it (after the result is recorded and committed). Baselines:
# one pgbench -N transaction, on a persistent connection and on a new connection per
# transaction (-C).
read -r _ latC <<<"$(pgbench_run 1 -C)"
figure() { sed -E -n "s/(^|.* )$1=([0-9.]*).*/\2/p" <<<"$2"; }  # figure NAME LINE: NAME=value in caller_latency.py's line
latency_row() {  # latency_row MODE BASELINE_MS BASELINE_TEXT
  local figures; figures=$(/usr/bin/python3 "$ROOT/test/bench/caller_latency.py" one $LAT_RUNS "$1") || exit 1
  breakdown+=("latency, $1 connection: $figures")
  local p50 p99 seen_p50 seen_p90
  p50=$(figure p50 "$figures"); p99=$(figure p99 "$figures")
  seen_p50=$(figure seen_p50 "$figures"); seen_p90=$(figure seen_p90 "$figures")
  row "latency, $1 connection: start_workflow → node SUCCESS (ms, p50 / p99 of $LAT_RUNS)" "$p50 / $p99" "$2 ms ($3)" "$(ratio "$p50" "$2")"
  row "latency, $1 connection: start_workflow → wait_for_run returns SUCCESS (ms, p50 / p90)" "$seen_p50 / $seen_p90" "$2 ms ($3)" "$(ratio "$seen_p50" "$2")"
}
latency_row persistent "$lat1" "one pgbench -N -c 1 transaction"
latency_row new "$latC" "one pgbench -N -c 1 -C transaction, its connection included"
hop_figures=$(/usr/bin/python3 "$ROOT/test/bench/caller_latency.py" hop $LAT_RUNS persistent) || exit 1
breakdown+=("hop workflow, persistent connection: $hop_figures")
hop_p50=$(figure hop "$hop_figures")
row "hop, node 1 end → node 2 start (ms, median of $LAT_RUNS)" "$hop_p50" "$lat1 ms (one pgbench -N -c 1 transaction)" "$(ratio "$hop_p50" "$lat1")"

# --- containers: through the scheduler, and straight through the Docker API -------------
batch=$ROOT/build-release/container_batch
raw_batch() {  # the same N containers, concurrency 4, the way the scheduler runs them: one process, 4 threads
  local seconds; seconds=$("$batch" orchestration/busybox:test "$1" 4 sh -c 'echo {}') && echo "$seconds"
}
cont_s=$(repeat_median containers) || exit 1
raw_s=$(for _ in $(seq $REPS); do raw_batch $CONTAINERS; done | median_of $REPS "raw containers") || exit 1
cont_rate=$(awk -v n=$CONTAINERS -v s="$cont_s" 'BEGIN {printf "%.1f", n / s}')
raw_rate=$(awk -v n=$CONTAINERS -v s="$raw_s" 'BEGIN {printf "%.1f", n / s}')
row "containers-$CONTAINERS (containers/s, concurrency 4)" "$cont_rate" "$raw_rate/s straight through the Docker API (one process, 4 threads)" "$(ratio "$cont_rate" "$raw_rate")"
one_s=$(repeat_median container) || exit 1
raw1_s=$(for _ in $(seq $REPS); do raw_batch 1; done | median_of $REPS "raw container") || exit 1
row "container-1 (s, trigger → SUCCESS)" "$(printf '%.3f' "$one_s")" "$(printf '%.3f' "$raw1_s") s one raw API lifecycle (same client)" "$(ratio "$one_s" "$raw1_s")"

# --- history: chain again with many finished node runs in the tables ---------------------
q "DO \$\$ DECLARE w orchestration.workflows; BEGIN
     SELECT * INTO w FROM orchestration.workflows WHERE name = 'one';
     INSERT INTO orchestration.workflow_runs (workflow_id, project_id, workflow_version, trigger, status, started_by, created_at, finished_at)
     SELECT w.id, 1, w.version, 'manual', 'SUCCESS', 'bench', now(), now() FROM generate_series(1, $HISTORY / 10);
     INSERT INTO orchestration.workflow_run_nodes (run_id, project_id, node_key, agent_id, action, inputs, depends_on,
       approval_required, retries, retry_backoff_seconds, run_if_skipped, refs, dependents, level, pending_deps, status,
       attempt, output, started_at, finished_at)
     SELECT r.id, 1, 'n' || k, n.agent_id, 'run', '{}', '{}', false, 0, 1, false, '{}', '{}', 0, 0, 'SUCCESS', 1, '{}', now(), now()
     FROM orchestration.workflow_runs r CROSS JOIN generate_series(1, 10) k
     JOIN orchestration.workflow_nodes n ON n.workflow_id = w.id
     WHERE r.started_by = 'bench';
   END \$\$"
q "VACUUM ANALYZE orchestration.workflow_runs, orchestration.workflow_run_nodes"
history=$(q "SELECT count(*) FROM orchestration.workflow_run_nodes")
hist_s=$(repeat_median chain) || exit 1
hist_rate=$(awk -v n=$N -v s="$hist_s" 'BEGIN {printf "%.0f", n / s}')
row "history: chain-$N with $history node runs in the tables (nodes/s)" "$hist_rate" "$chain_rate nodes/s on empty tables (row 1)" "$(ratio "$hist_rate" "$chain_rate")"

# --- active runs: the workers' memory at ACTIVE, the claim cost at MANY_ACTIVE -----------
workers_memory() {  # the largest private memory (RssAnon) of the scheduler and the RULE workers, in MiB; and a line per process
  local pid kind
  while IFS='|' read -r pid kind; do
    awk -v kind="$kind" -v pid="$pid" '/^VmHWM|^VmRSS|^RssAnon|^RssShmem/ {v[$1] = $2}
      END {printf "%s %s: RssAnon %.1f MiB, VmRSS %.1f MiB (RssShmem %.1f, shared buffers it touched), peak VmHWM %.1f MiB\n",
           kind, pid, v["RssAnon:"] / 1024, v["VmRSS:"] / 1024, v["RssShmem:"] / 1024, v["VmHWM:"] / 1024}' "/proc/$pid/status"
  done < <(q "SELECT pid, backend_type FROM pg_stat_activity WHERE datname = '$DB'
              AND backend_type IN ('pg_orchestration scheduler', 'pg_orchestration rule worker') ORDER BY backend_type, pid")
}
largest=0
memory_now() {  # memory_now TITLE: the workers' memory, under TITLE in the breakdown; the largest private memory in $largest (MiB)
  local lines; lines=$(workers_memory)
  breakdown+=("$1:")
  mapfile -t -O ${#breakdown[@]} breakdown < <(sed 's/^/  /' <<<"$lines")
  largest=$(sed -n 's/.*RssAnon \([0-9.]*\) MiB.*/\1/p' <<<"$lines" | sort -g | tail -1)
}
start_gates() {  # start_gates N TOTAL: N more runs that stay active (their node waits for an approval), until TOTAL wait
  q "DO \$\$ BEGIN FOR i IN 1..$1 LOOP PERFORM orchestration.start_workflow(1, 'gate'); COMMIT; END LOOP; END \$\$"
  for _ in $(seq 600); do
    [ "$(q "SELECT count(*) FROM orchestration.workflow_runs WHERE status = 'WAITING_APPROVAL'")" -ge "$2" ] && return
    sleep 0.5
  done
  echo "scheduler_bench: runs did not reach WAITING_APPROVAL" >&2; exit 1
}
memory_now "memory before the active runs"; mem_before=$largest
start_gates $ACTIVE $ACTIVE
memory_now "memory with $ACTIVE active runs"; mem_after=$largest
row "scheduler and RULE workers with $ACTIVE active runs (MiB private memory, the largest)" "$mem_after" "$mem_before MiB the same processes before" "$(ratio "$mem_after" "$mem_before")"
# Memory must not grow with what the nodes output: twenty 1 MB outputs, three times.
for _ in 1 2 3; do
  [ -n "$(run_seconds bulky)" ] || { echo "scheduler_bench: workflow bulky did not succeed" >&2; exit 1; }
done
memory_now "memory after 60 RULE nodes of 1 MB output each"; mem_bulky=$largest
row "the same after 60 RULE nodes of 1 MB output each (MiB private memory, the largest)" "$mem_bulky" "$mem_after MiB before them (the row above)" "$(ratio "$mem_bulky" "$mem_after")"
start_gates $((MANY_ACTIVE - ACTIVE)) $MANY_ACTIVE
many_s=$(repeat_median chain) || exit 1
many_rate=$(awk -v n=$N -v s="$many_s" 'BEGIN {printf "%.0f", n / s}')
row "chain-$N with $MANY_ACTIVE active runs waiting (nodes/s)" "$many_rate" "$chain_rate nodes/s without (row 1)" "$(ratio "$many_rate" "$chain_rate")"
q "UPDATE orchestration.workflow_runs SET status = 'CANCELLED' WHERE status = 'WAITING_APPROVAL'"

# --- the profile of a chain (--profile) ----------------------------------------------------
profile=()
if [ $PROFILE = 1 ]; then
  tmp=$(mktemp -d)
  pids=$(q "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE datname = '$DB'
            AND backend_type IN ('pg_orchestration scheduler', 'pg_orchestration rule worker')")
  perf record -q -F 999 --call-graph dwarf,16384 -p "$pids" -o "$tmp/perf.data" -- sleep 600 >/dev/null 2>&1 &
  perf_pid=$!
  sleep 1
  run_seconds chain >/dev/null
  kill -INT $perf_pid; wait $perf_pid 2>/dev/null
  mapfile -t profile < <(
    echo "Where chain-$N's time goes in the scheduler and the RULE workers (perf, $(date -u +%H:%M:%S)), self time:"
    perf report -i "$tmp/perf.data" --no-children --sort dso,symbol -g none --percent-limit 0.8 -q 2>/dev/null |
      grep -v '^$' | sed 's/[ -]*$//' | head -25
    echo "Inclusive (a function and what it calls), named entries:"
    perf report -i "$tmp/perf.data" --children --sort symbol -g none -q 2>/dev/null |
      grep -v '^$' | grep -v ' 0x0000' | grep -Ev 'guard|lambda|operator\(\)|_start|main|PostmasterMain|StartBackgroundWorker' |
      sed 's/[ -]*$//' | cut -c1-140 | head -30)
  rm -rf "$tmp"
  [ ${#profile[@]} -gt 5 ] || { echo "scheduler_bench: perf recorded no profile" >&2; exit 1; }
fi

q "ALTER SYSTEM RESET orchestration.max_concurrent_nodes"
q "SELECT pg_reload_conf()" >/dev/null

echo
echo "pg_orchestration benchmarks$([ $SMOKE = 1 ] && echo ' (smoke mode: tiny sizes, one repetition; the figures mean nothing)') — $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d)"
echo
echo "| workload | figure | baseline (same run) | ratio |"
echo "| --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
echo "Where the time went (latency: medians, ms; cpu_*: microseconds of CPU per run, each process; caller_latency.py):"
printf '  %s\n' "${breakdown[@]}"
[ ${#profile[@]} -gt 0 ] && { echo; printf '%s\n' "${profile[@]}"; }
[ "${#rows[@]}" -eq 13 ]
