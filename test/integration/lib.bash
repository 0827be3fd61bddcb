# Helpers for the integration tests: TAP output, psql against the test cluster, waiting.
# Each test is a bash script that prints TAP, run by `prove` (scripts/test.sh).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
eval "$("$ROOT/scripts/cluster.sh" env)"
export PGDATABASE=orchestration_test
DATA=${ORCH_PGDATA:-/tmp/pg_orchestration/data}

tap_count=0
tap_failed=0
ok() {  # ok CONDITION-EXIT-STATUS DESCRIPTION
  tap_count=$((tap_count + 1))
  if [ "$1" -eq 0 ]; then echo "ok $tap_count - $2"; else echo "not ok $tap_count - $2"; tap_failed=$((tap_failed + 1)); fi
}
is() {  # is GOT EXPECTED DESCRIPTION
  tap_count=$((tap_count + 1))
  if [ "$1" = "$2" ]; then echo "ok $tap_count - $3"
  else echo "not ok $tap_count - $3"; echo "#   got:      '$1'"; echo "#   expected: '$2'"; tap_failed=$((tap_failed + 1)); fi
}
done_testing() { echo "1..$tap_count"; [ "$tap_failed" -eq 0 ]; }

q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

# wait_for SECONDS SQL: until the query returns 't' (true), or fail after SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do
    [ "$(q "$2" 2>/dev/null)" = "t" ] && return 0
    sleep 0.2
  done
  return 1
}

scheduler_pid() {
  q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_orchestration scheduler' AND datname = current_database()" 2>/dev/null
}

# A fresh extension in orchestration_test, and a scheduler connected to it.
reset_database() {
  q "DROP EXTENSION IF EXISTS pg_orchestration CASCADE" >/dev/null 2>&1
  # As a new database has it: USAGE for everyone (PostgreSQL 15 grants no CREATE).
  q "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public; GRANT USAGE ON SCHEMA public TO PUBLIC" >/dev/null 2>&1
  q "CREATE EXTENSION pg_orchestration" >/dev/null
  wait_for 30 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_orchestration scheduler' AND datname = current_database()"
}

# database_without_workers NAME: a fresh database with the extension that no worker serves
# (it is not in orchestration.database_name), made the one q and psql use: there only the
# test's own sessions claim, start or lock anything.
database_without_workers() {
  PGDATABASE=postgres q "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1
  PGDATABASE=postgres q "CREATE DATABASE $1" >/dev/null
  export PGDATABASE=$1
  q "CREATE EXTENSION pg_orchestration"
}

# rule_workflow NAME [PROJECT]: in the project (1 by default), a RULE agent NAME calling
# public.NAME(jsonb), made beforehand, for its capability NAME, and a workflow NAME of one
# node, NAME, that runs it.
rule_workflow() {
  local project=${2:-1}
  q "SELECT orchestration.register_agent($project, '{\"name\": \"$1\", \"type\": \"RULE\", \"function\": \"public.$1\", \"capabilities\": [{\"name\": \"$1\"}]}')" >/dev/null
  q "SELECT orchestration.create_workflow($project, '{\"name\": \"$1\", \"nodes\": [{\"id\": \"$1\", \"agent\": \"$1\", \"action\": \"$1\"}]}')" >/dev/null
}

# wait_for_sleeper SECONDS: until a session of this database runs "SELECT pg_sleep(SECONDS)",
# the pause a test's background transaction holds its locks in.
wait_for_sleeper() {
  wait_for 10 "SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep($1)'" ||
    echo "# no session got to pg_sleep($1)"
}

# cpu_ticks PID...: the processes' user + system CPU time so far, in clock ticks.
cpu_ticks() { local total=0 p; for p in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$total"; }

pg_ctl_as_postgres() { runuser -u postgres -- "$(pg_config --bindir)/pg_ctl" -D "$DATA" "$@"; }

# NATS (scripts/nats.sh) and the test client built by CMake (test/integration/nats_probe.cpp).
NATS_URL=$("$ROOT/scripts/nats.sh" url)
NATS_PROBE=$ROOT/build/nats_probe

relay_pid() {
  q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_orchestration relay' AND datname = current_database()" 2>/dev/null
}
metrics_pid() {
  q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_orchestration metrics' AND datname = current_database()" 2>/dev/null
}

# stream_events FILTER: the JSON lines nats_probe reads from the ORCHESTRATION stream on FILTER
# that this database published ({"seq", "msg_id", "subject", "event"}).
stream_events() {
  "$NATS_PROBE" read "$NATS_URL" ORCHESTRATION "$1" 1000 |
    python3 -c '
import json, sys
want = "/orchestration/" + sys.argv[1] + "/"
for line in sys.stdin:
    m = json.loads(line)
    if isinstance(m["event"], dict) and m["event"].get("source", "").startswith(want):
        print(line, end="")' "$PGDATABASE"
}
