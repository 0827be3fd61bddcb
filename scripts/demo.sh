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

# The same numbers as Prometheus scrapes them: the metrics worker serves GET /metrics
# once orchestration.metrics_listen is set (the demo database is the first listed, so it
# is on the port given).
psql -X -q -d orchestration_demo -c "ALTER SYSTEM SET orchestration.metrics_listen = '127.0.0.1:9187'" \
  -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:9187/metrics && break; sleep 0.2; done
echo "curl http://127.0.0.1:9187/metrics (its run and node counts):"
curl -s http://127.0.0.1:9187/metrics | grep -E '^orchestration_(runs|nodes|container_starts_total)\{'

cat <<DONE

The demo database is up. Look around with:
  eval "\$(scripts/cluster.sh env)"; psql -d orchestration_demo
Prometheus can scrape http://127.0.0.1:9187/metrics; docker/grafana/pg_orchestration.json is
a Grafana dashboard of those series. The Python client: README, "From Python".
Stop the cluster with: scripts/cluster.sh stop (and what it started: scripts/dockerd.sh stop; scripts/nats.sh stop)
DONE
