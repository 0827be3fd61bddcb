#!/usr/bin/env bash
# The scheduler's benchmarks: each workload's figure beside a baseline measured in the same
# run on the same machine, and their ratio (these machines are noisy: the ratio is what to
# compare). Median of 3 repetitions after a warm-up; --smoke: tiny sizes, one repetition
# (scripts/test.sh runs that, so the benchmark cannot rot).
#
#   test/bench/scheduler_bench.sh [--smoke]
#
# Needs the test set-up running (scripts/test.sh leaves nothing running; run
# scripts/cluster.sh start, scripts/dockerd.sh start and docker/agents/build-test-image.sh
# first, or use scripts/bench.sh, which does). Uses the database orchestration_bench
# (recreated) and pgbench's own database orchestration_pgbench.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
eval "$("$ROOT/scripts/cluster.sh" env)"
SMOKE=0; [ "${1:-}" = "--smoke" ] && SMOKE=1
if [ $SMOKE = 1 ]; then
  N=20; REPS=1; WARMUP=0; LAT_RUNS=10; CONTAINERS=4; HISTORY=10000; PGBENCH_S=2
else
  N=1000; REPS=3; WARMUP=1; LAT_RUNS=200; CONTAINERS=100; HISTORY=1000000; PGBENCH_S=10
fi
DB=orchestration_bench
export PGDATABASE=$DB
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
rows=()
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
q "ALTER SYSTEM SET orchestration.max_concurrent_nodes = 4"
q "SELECT pg_reload_conf()" >/dev/null

# Runs a workflow once; prints the seconds from the run's creation to its end.
run_seconds() {
  local run; run=$(q "SELECT orchestration.start_workflow(1, '$1')")
  q "SELECT orchestration.wait_for_run($run, '600 seconds')" >/dev/null
  q "SELECT extract(epoch FROM finished_at - created_at) FROM orchestration.workflow_runs WHERE id = $run AND status = 'SUCCESS'"
}
repeat_median() {  # repeat_median WORKFLOW: median seconds over REPS after WARMUP
  for _ in $(seq $WARMUP); do run_seconds "$1" >/dev/null; done
  for _ in $(seq $REPS); do run_seconds "$1"; done | median
}

# --- baselines: pgbench on the same server -----------------------------------------------
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS orchestration_pgbench" -c "CREATE DATABASE orchestration_pgbench" >/dev/null
pgbench -q -i -s $PGBENCH_S orchestration_pgbench >/dev/null 2>&1
pgbench_run() {  # pgbench_run CLIENTS: prints "tps latency_ms"
  pgbench -N -c "$1" -j "$1" -T $([ $SMOKE = 1 ] && echo 2 || echo 10) orchestration_pgbench 2>/dev/null |
    awk '/^latency average/ {lat=$4} /^tps/ {tps=$3} END {print tps, lat}'
}
read -r tps1 lat1 <<<"$(pgbench_run 1)"
read -r tps4 _ <<<"$(pgbench_run 4)"

# --- chain, wide ------------------------------------------------------------------------------
chain_s=$(repeat_median chain)
chain_rate=$(awk -v n=$N -v s="$chain_s" 'BEGIN {printf "%.0f", n / s}')
row "chain-$N (RULE nodes/s)" "$chain_rate" "$(printf '%.0f' "$tps1") tx/s (pgbench -N -c 1)" "$(ratio "$chain_rate" "$tps1")"
wide_s=$(repeat_median wide)
wide_rate=$(awk -v n=$((N + 1)) -v s="$wide_s" 'BEGIN {printf "%.0f", n / s}')
row "wide-$N (RULE nodes/s)" "$wide_rate" "$(printf '%.0f' "$tps4") tx/s (pgbench -N -c 4)" "$(ratio "$wide_rate" "$tps4")"

# --- latency and hop, measured by the database's own clocks ------------------------------
q "DO \$\$ DECLARE r bigint; BEGIN
     FOR i IN 1..$LAT_RUNS LOOP
       r := orchestration.start_workflow(1, 'one'); COMMIT;
       PERFORM orchestration.wait_for_run(r, '60 seconds'); COMMIT;
       r := orchestration.start_workflow(1, 'hop'); COMMIT;
       PERFORM orchestration.wait_for_run(r, '60 seconds'); COMMIT;
     END LOOP; END \$\$"
read -r lat_p50 lat_p99 <<<"$(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2)
  FROM (SELECT extract(epoch FROM n.finished_at - r.created_at) * 1000 AS ms
        FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id AND w.name = 'one'
        JOIN orchestration.workflow_run_nodes n ON n.run_id = r.id) s" | tr '|' ' ')"
read -r hop_p50 hop_p99 <<<"$(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3)
  FROM (SELECT extract(epoch FROM b.started_at - a.finished_at) * 1000 AS ms
        FROM orchestration.workflow_runs r JOIN orchestration.workflows w ON w.id = r.workflow_id AND w.name = 'hop'
        JOIN orchestration.workflow_run_nodes a ON a.run_id = r.id AND a.node_key = 'n1'
        JOIN orchestration.workflow_run_nodes b ON b.run_id = r.id AND b.node_key = 'n2') s" | tr '|' ' ')"
row "latency, start_workflow → node SUCCESS (ms, p50 / p99 of $LAT_RUNS)" "$lat_p50 / $lat_p99" "$lat1 ms (one pgbench -N -c 1 transaction)" "$(ratio "$lat_p50" "$lat1")"
row "hop, node 1 end → node 2 start (ms, p50 / p99 of $LAT_RUNS)" "$hop_p50 / $hop_p99" "$lat1 ms (same)" "$(ratio "$hop_p50" "$lat1")"

# --- containers: through the scheduler, and straight through the Docker API -------------
probe=$ROOT/build/container_probe
raw_batch() {  # the same N containers, concurrency 4, by a small client (create/attach/start/wait/logs/remove)
  local start end; start=$(date +%s.%N)
  seq "$1" | xargs -P 4 -I{} sh -c "echo '{}' | PROBE_ATTEMPT=\$((1000 + {})) $probe orchestration/busybox:test 60 256 128 1048576 0 sh -c 'echo {}' >/dev/null"
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN {print b - a}'
}
cont_s=$(repeat_median containers)
raw_s=$(for _ in $(seq $REPS); do raw_batch $CONTAINERS; done | median)
cont_rate=$(awk -v n=$CONTAINERS -v s="$cont_s" 'BEGIN {printf "%.1f", n / s}')
raw_rate=$(awk -v n=$CONTAINERS -v s="$raw_s" 'BEGIN {printf "%.1f", n / s}')
row "containers-$CONTAINERS (containers/s, concurrency 4)" "$cont_rate" "$raw_rate/s straight through the Docker API" "$(ratio "$cont_rate" "$raw_rate")"
one_s=$(repeat_median container)
raw1_s=$(for _ in $(seq $REPS); do raw_batch 1; done | median)
row "container-1 (s, trigger → SUCCESS)" "$(printf '%.3f' "$one_s")" "$(printf '%.3f' "$raw1_s") s one raw API lifecycle" "$(ratio "$one_s" "$raw1_s")"

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
hist_s=$(repeat_median chain)
hist_rate=$(awk -v n=$N -v s="$hist_s" 'BEGIN {printf "%.0f", n / s}')
row "history: chain-$N with $history node runs in the tables (nodes/s)" "$hist_rate" "$chain_rate nodes/s on empty tables (row 1)" "$(ratio "$hist_rate" "$chain_rate")"

rss=$(awk '/VmHWM/ {print $2, $3}' "/proc/$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_orchestration scheduler' AND datname = '$DB'")/status")
q "ALTER SYSTEM RESET orchestration.max_concurrent_nodes"
q "SELECT pg_reload_conf()" >/dev/null

echo
echo "pg_orchestration benchmarks$([ $SMOKE = 1 ] && echo ' (smoke mode: tiny sizes, one repetition; the figures mean nothing)') — $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d)"
echo
echo "| workload | figure | baseline (same run) | ratio |"
echo "| --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
echo "scheduler worker peak RSS (VmHWM): $rss"
[ "${#rows[@]}" -eq 7 ]
