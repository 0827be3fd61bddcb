#!/usr/bin/env bash
# Installs every Debian package pg_orchestration needs to build, test and run its demo,
# on a fresh Debian 12 machine, as root. Safe to run again: apt skips what is there.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi

packages=(
  # build
  build-essential cmake pkg-config
  postgresql-15 postgresql-server-dev-15 libpq-dev
  nlohmann-json3-dev libcurl4-openssl-dev libnats-dev libre2-dev
  # containers: the engine, and busybox for the test images built offline
  docker.io busybox-static
  # events: the NATS server (JetStream) the relay publishes to; curl for its health check
  nats-server curl
  # tests
  libgtest-dev postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
  clang libclang-rt-14-dev python3-yaml
  # the official JSON-Schema-Test-Suite (its draft2020-12 tests and remotes), which
  # test/unit/json_schema_suite_test.cpp reads from where this package puts it
  libtest-json-schema-acceptance-perl
  # observability tests: a Prometheus exposition parser, Graphviz to render run graphs
  python3-prometheus-client graphviz
  # the Prometheus endpoint's test scrapes it with a real Prometheus server
  prometheus
  # the Python client (python/) and the README's "From Python" program
  # (test/integration/python_client.sh, readme_python.sh): psycopg 3, a venv to install
  # the package into offline, its tests and type check
  python3-psycopg python3-venv python3-pytest python3-pytest-asyncio mypy
  # scripts/bench.sh --profile: where the scheduler's time goes
  linux-perf
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps.sh: all ${#packages[@]} packages already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
