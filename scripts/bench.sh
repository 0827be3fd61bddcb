#!/usr/bin/env bash
# The scheduler benchmarks (test/bench/scheduler_bench.sh), on a fresh machine, as root:
# installs and builds what they need, starts the cluster, the Docker engine (with the
# test image) and nats-server, and prints the table. --smoke: tiny sizes, one repetition.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
make -j2 >/dev/null && make install >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug >/dev/null && cmake --build build -j2 --target container_probe >/dev/null
scripts/dockerd.sh start >/dev/null
docker/agents/build-test-image.sh >/dev/null
scripts/nats.sh start >/dev/null
scripts/cluster.sh start >/dev/null
exec test/bench/scheduler_bench.sh "$@"
