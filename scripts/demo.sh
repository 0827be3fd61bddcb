#!/usr/bin/env bash
# The demo: installs what is needed, builds and installs the extension, starts a local
# cluster that preloads it and a Docker engine, builds the sample agent images offline,
# creates the database orchestration_demo, registers the sample agents (security-scanner,
# notifier), defines the sample workflow and runs it end to end (with an approval),
# showing each step with psql. Run it again at any time: it starts over.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
make -j2 >/dev/null && make install >/dev/null
scripts/dockerd.sh start
docker/agents/build-images.sh
scripts/cluster.sh start
eval "$(scripts/cluster.sh env)"

psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
SET client_min_messages = warning;
-- FORCE: the scheduler worker of orchestration_demo is connected to it.
DROP DATABASE IF EXISTS orchestration_demo WITH (FORCE);
CREATE DATABASE orchestration_demo;
SQL

psql -X -v ON_ERROR_STOP=1 -d orchestration_demo -f docker/demo.sql

cat <<DONE

The demo database is up. Look around with:
  eval "\$(scripts/cluster.sh env)"; psql -d orchestration_demo
Stop the cluster with: scripts/cluster.sh stop (and the Docker engine it started: scripts/dockerd.sh stop)
DONE
