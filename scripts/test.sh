#!/usr/bin/env bash
# Runs the whole test suite on this machine, as root on a fresh Debian 12 machine:
# installs what it needs, then
#   1. the C++ core's GoogleTest unit tests, under ASan/UBSan (ctest), among them every
#      case of JSON-Schema-Test-Suite's required draft 2020-12 part (from Debian's
#      libtest-json-schema-acceptance-perl), whose count the summary repeats
#   2. builds and installs the extension, starts a throwaway cluster that preloads it
#   3. the pg_regress suite (make installcheck): sql/*.sql against expected/*.out
#   4. the pgTAP suite (pg_prove): test/pgtap/*.sql
#   5. the integration suite (prove): test/integration/*.sh, which kill and restart real
#      processes (the scheduler and relay workers, the whole server, nats-server), run
#      containers on a real Docker engine (started here, with its test image built
#      offline), read events from a real nats-server with JetStream (started here), run
#      the Python client's pytest suite and mypy (python_client.sh) and scrape the metrics
#      endpoint with a real Prometheus server (prometheus.sh)
#   6. the JSON Schema fuzz target (libFuzzer, ASan/UBSan) for ORCH_FUZZ_SECONDS (60)
#   7. the JSON Schema benchmark, which prints its figure (it asserts nothing), and the
#      scheduler benchmarks in smoke mode (tiny sizes, so that they cannot rot)
# and ends with each runner's own summary line. Exits non-zero if any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
logs=$(mktemp -d /tmp/pg_orchestration_test.XXXXXX)
failed=()

step() { printf '\n=== %s\n' "$*"; }

step "installing dependencies"
scripts/install-deps.sh || exit 1

step "unit tests (ctest, ASan/UBSan)"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug -DORCH_SANITIZE=ON >/dev/null &&
  cmake --build build -j2 &&
  ctest --test-dir build --output-on-failure; } 2>&1 | tee "$logs/ctest.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(ctest)

step "building and installing the extension"
make -j2 >"$logs/make.log" 2>&1 && make install >>"$logs/make.log" 2>&1 ||
  { cat "$logs/make.log"; exit 1; }

step "starting the Docker engine and building the test image"
scripts/dockerd.sh start || exit 1
docker/agents/build-test-image.sh || exit 1

step "starting nats-server (JetStream) and a fresh cluster"
scripts/nats.sh start || exit 1
scripts/cluster.sh destroy
scripts/cluster.sh start || exit 1
trap 'scripts/cluster.sh stop; scripts/dockerd.sh stop; scripts/nats.sh stop' EXIT
eval "$(scripts/cluster.sh env)"

# A database for each suite, each with its workers: scripts/cluster.sh created those its
# orchestration.database_name lists (the benchmark recreates its own).

step "pg_regress (make installcheck)"
psql -q -X -v ON_ERROR_STOP=1 -d orchestration_regress -c "CREATE EXTENSION pg_orchestration" || exit 1
if ! make installcheck 2>&1 | tee "$logs/regress.log"; then
  failed+=(pg_regress)
  [ -f regression.diffs ] && cat regression.diffs
fi

step "pgTAP (pg_prove)"
psql -q -X -v ON_ERROR_STOP=1 -d orchestration_tap <<SQL || exit 1
SET client_min_messages = warning;
CREATE EXTENSION pgtap;
CREATE EXTENSION pg_orchestration;
SQL
pg_prove -d orchestration_tap test/pgtap/*.sql 2>&1 | tee "$logs/pgtap.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(pgtap)

step "integration tests (prove)"
prove -v test/integration/*.sh 2>&1 | tee "$logs/integration.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(integration)

step "fuzzing the JSON Schema validator (libFuzzer, ASan/UBSan, ${ORCH_FUZZ_SECONDS:-60} s)"
corpus=$(mktemp -d /tmp/pg_orchestration_corpus.XXXXXX)
cp test/fuzz/corpus/* "$corpus"/
if CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DORCH_FUZZ=ON -DORCH_SANITIZE=ON >/dev/null &&
   cmake --build build-fuzz -j2 --target json_schema_fuzz >"$logs/fuzz-build.log" 2>&1; then
  if ./build-fuzz/json_schema_fuzz "$corpus" -max_total_time="${ORCH_FUZZ_SECONDS:-60}" -timeout=10 \
       -rss_limit_mb=2048 -print_final_stats=1 >"$logs/fuzz.log" 2>&1; then
    grep -E 'stat::number_of_executed_units|Done' "$logs/fuzz.log"
  else
    tail -60 "$logs/fuzz.log"
    failed+=(fuzz)
  fi
else
  cat "$logs/fuzz-build.log"
  failed+=(fuzz)
fi
rm -rf "$corpus"

step "benchmark: JSON Schema validation of a 10 MB instance"
if cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DORCH_SANITIZE=OFF >/dev/null &&
   cmake --build build-release -j2 --target json_schema_bench container_batch >"$logs/bench-build.log" 2>&1; then
  ./build-release/json_schema_bench 10 5 || failed+=(benchmark)
else
  cat "$logs/bench-build.log"
  failed+=(benchmark)
fi

step "scheduler benchmarks, smoke mode (tiny sizes: proves they run; scripts/bench.sh for figures)"
test/bench/scheduler_bench.sh --smoke --profile 2>&1 | tee "$logs/scheduler-bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(scheduler-bench)

step "summary"
grep -E 'tests passed|tests failed out of' "$logs/ctest.log" | tail -1
./build/unit_tests --gtest_filter='JsonSchemaSuite.*' 2>/dev/null | grep -E 'cases pass'
grep -E 'tests? (passed|failed)' "$logs/regress.log" | sed 's/^ *//' | tail -1
grep -E '^(Files=|Result:)' "$logs/pgtap.log"
grep -E '^(Files=|Result:)' "$logs/integration.log"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]} (logs in $logs)"
  exit 1
fi
rm -rf "$logs"
