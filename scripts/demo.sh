#!/usr/bin/env bash
# The demo: installs what is needed, builds and installs the extension, starts a local
# cluster that preloads it, a Docker engine and nats-server (JetStream), builds the sample agent images offline,
# creates the database orchestration_demo, registers the sample agents (security-scanner,
# notifier), defines the sample workflow and runs it end to end (with an approval),
# showing each step with psql. Run it again at any time: it starts over.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
make -j2 >/dev/null && make install >/dev/null
scripts/dockerd.sh start
docker/agents/build-images.sh
scripts/nats.sh start
scripts/cluster.sh start
eval "$(scripts/cluster.sh env)"

psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
SET client_min_messages = warning;
-- FORCE: the scheduler worker of orchestration_demo is connected to it.
DROP DATABASE IF EXISTS orchestration_demo WITH (FORCE);
CREATE DATABASE orchestration_demo;
SQL

psql -X -v ON_ERROR_STOP=1 -d orchestration_demo -f docker/demo.sql

# Every state change above is also on NATS (JetStream stream ORCHESTRATION, subjects
# orchestration.<project>.<entity>.<event>) once the relay has published it.
for _ in $(seq 50); do
  [ "$(psql -X -At -d orchestration_demo -c "SELECT count(*) FROM orchestration.events WHERE published_at IS NULL")" = 0 ] && break
  sleep 0.2
done
psql -X -d orchestration_demo -c "SELECT orchestration.nats_subject_of(project_id, type) AS nats_subject, published_at IS NOT NULL AS on_nats FROM orchestration.events ORDER BY id"

cat <<DONE

The demo database is up. Look around with:
  eval "\$(scripts/cluster.sh env)"; psql -d orchestration_demo
Stop the cluster with: scripts/cluster.sh stop (and what it started: scripts/dockerd.sh stop; scripts/nats.sh stop)
DONE
