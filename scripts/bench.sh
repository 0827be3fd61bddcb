#!/usr/bin/env bash
# The scheduler benchmarks (test/bench/scheduler_bench.sh), on a fresh machine, as root:
# installs and builds what they need, starts the cluster, the Docker engine (with the
# test image) and nats-server, and prints the table. --smoke: tiny sizes, one repetition;
# --profile: also the top of a perf profile of chain-1000 (Debian's linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
make -j2 >/dev/null && make install >/dev/null
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DORCH_SANITIZE=OFF >/dev/null &&
  cmake --build build-release -j2 --target container_batch >/dev/null
scripts/dockerd.sh start >/dev/null
docker/agents/build-test-image.sh >/dev/null
scripts/nats.sh start >/dev/null
scripts/cluster.sh start >/dev/null
exec test/bench/scheduler_bench.sh "$@"
