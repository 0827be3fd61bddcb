#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the demo and the tests, with pg_orchestration in
# shared_preload_libraries, listening on 127.0.0.1 and a socket in its own directory.
#
#   scripts/cluster.sh start     create it if needed, start it, wait until it answers, and
#                                create the databases of orchestration.database_name
#   scripts/cluster.sh stop      stop it (fast shutdown)
#   scripts/cluster.sh restart   stop, then start (after make install of a new .so)
#   scripts/cluster.sh destroy   stop it, delete its files, and give back the huge pages
#                                start reserved
#   scripts/cluster.sh env       print the PG* variables that point psql at it
#
# ORCH_PGPORT (default 55432) and ORCH_PGDATA (default /tmp/pg_orchestration/data) move it;
# ORCH_DATABASES sets orchestration.database_name when the cluster is created.
set -euo pipefail

PGBIN=$(pg_config --bindir)
PORT=${ORCH_PGPORT:-55432}
DATA=${ORCH_PGDATA:-/tmp/pg_orchestration/data}
SOCKDIR=$(dirname "$DATA")/socket
LOG=$(dirname "$DATA")/server.log
# The databases whose workflows the cluster's schedulers run: the demo's and the tests'.
DATABASES=${ORCH_DATABASES:-orchestration_demo,orchestration_regress,orchestration_tap,orchestration_test,orchestration_bench}

# Postgres refuses to run as root; as root we act as the postgres OS user.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

create() {
  mkdir -p "$(dirname "$DATA")" "$SOCKDIR"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$(dirname "$DATA")" "$SOCKDIR"
  as_postgres "$PGBIN/initdb" -D "$DATA" -U postgres -A trust --no-sync -E UTF8 \
    --locale=C.UTF-8 >/dev/null
  cat >> "$DATA/postgresql.conf" <<CONF

# --- pg_orchestration test cluster ---
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCKDIR'
shared_preload_libraries = 'pg_orchestration'
orchestration.database_name = '$DATABASES'
orchestration.allowed_images = 'orchestration/*'
orchestration.nats_url = '${ORCH_NATS_URL:-nats://127.0.0.1:54222}'
fsync = off
max_connections = 100
# Six workers (scheduler, relay, metrics, three RULE workers) per database in
# orchestration.database_name, and room for parallel queries.
max_worker_processes = 40
logging_collector = on
log_directory = 'log'
log_filename = 'postgresql.log'
log_line_prefix = '%m [%p] %u@%d '
CONF
}

# Huge pages for the shared memory: PostgreSQL uses them when the kernel has enough free
# (huge_pages = try, its default), and the kernel has none reserved unless told to. On the
# virtual machines this is measured on a page fault costs about 10 µs, and every process
# takes one on each 4 kB page of shared memory it touches for the first time (the shared
# buffers a growing table is given, a new connection's first look at everything): with
# 2 MB pages a caller's latency p50 was 0.1-0.2 ms lower and a new connection's 8 ms
# (README, Performance). As root, start reserves the pages the cluster
# needs that the kernel does not have free, and notes how many; destroy gives those back.
# Without root, or where /proc/sys is read-only, the cluster runs on 4 kB pages as before.
HUGE_PAGES_NOTE=$(dirname "$DATA")/huge_pages_reserved
reserve_huge_pages() {
  { [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; } || return 0
  local needed free total
  needed=$(as_postgres "$PGBIN/postgres" -D "$DATA" -C shared_memory_size_in_huge_pages 2>/dev/null) || return 0
  free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
  total=$(cat /proc/sys/vm/nr_hugepages)
  [ -n "$needed" ] && [ "$needed" -gt 0 ] && [ "${free:-0}" -lt "$needed" ] || return 0
  echo $((total + needed - free)) > /proc/sys/vm/nr_hugepages 2>/dev/null || return 0
  # The kernel may find fewer free 2 MB blocks than asked for: note what it gave.
  local given=$(($(cat /proc/sys/vm/nr_hugepages) - total))
  [ "$given" -gt 0 ] && echo $(($(cat "$HUGE_PAGES_NOTE" 2>/dev/null || echo 0) + given)) > "$HUGE_PAGES_NOTE"
  return 0
}
release_huge_pages() {
  [ -f "$HUGE_PAGES_NOTE" ] && [ -w /proc/sys/vm/nr_hugepages ] || return 0
  local total; total=$(cat /proc/sys/vm/nr_hugepages)
  local reserved; reserved=$(cat "$HUGE_PAGES_NOTE")
  echo $((total > reserved ? total - reserved : 0)) > /proc/sys/vm/nr_hugepages 2>/dev/null || true
  rm -f "$HUGE_PAGES_NOTE"
}

start() {
  [ -f "$DATA/PG_VERSION" ] || create
  # The scheduler launches containers through the Docker socket, which belongs to the
  # docker group: the server (started as postgres below) must be in it.
  if [ "$(id -u)" -eq 0 ] && getent group docker >/dev/null && ! id -nG postgres | grep -qw docker; then
    usermod -aG docker postgres
  fi
  if ! as_postgres "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    reserve_huge_pages
    as_postgres "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null
    echo "cluster.sh: PostgreSQL running on 127.0.0.1:$PORT (data $DATA)"
  fi
  create_databases
}

# The databases the workers are configured for (orchestration.database_name) are created
# when missing: a worker whose database does not exist logs FATAL every few seconds.
create_databases() {
  local sql=(as_postgres "$PGBIN/psql" -X -q -At -h "$SOCKDIR" -p "$PORT" -U postgres -d postgres)
  local configured db
  configured=$("${sql[@]}" -c "SHOW orchestration.database_name")
  for db in ${configured//,/ }; do
    [ "$("${sql[@]}" -v db="$db" <<<"SELECT count(*) FROM pg_database WHERE datname = :'db'")" = 1 ] ||
      "${sql[@]}" -v db="$db" <<<'CREATE DATABASE :"db"'
  done
}

stop() {
  [ -f "$DATA/PG_VERSION" ] || return 0
  if as_postgres "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_postgres "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  destroy) stop; release_huge_pages; rm -rf "$DATA" "$SOCKDIR" "$LOG" ;;
  env) echo "export PGHOST=$SOCKDIR PGPORT=$PORT PGUSER=postgres" ;;
  *) echo "usage: $0 start|stop|restart|destroy|env" >&2; exit 2 ;;
esac
