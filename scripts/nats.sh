#!/usr/bin/env bash
# The local NATS server (Debian's nats-server) with JetStream, for the tests and the demo.
# Clients connect to nats://127.0.0.1:54222; monitoring (/healthz, /jsz) is on 58222.
# JetStream keeps its streams under $ORCH_RUN_DIR/nats, so they survive a restart.
#
#   scripts/nats.sh start   start it unless it answers already
#   scripts/nats.sh stop    stop it (SIGTERM), if this script started it
#   scripts/nats.sh kill    kill -9 it (the fault tests)
#   scripts/nats.sh url     print the client URL
set -euo pipefail
STATE=${ORCH_RUN_DIR:-/tmp/pg_orchestration}
PORT=${ORCH_NATS_PORT:-54222}
MONITOR=${ORCH_NATS_MONITOR_PORT:-58222}
PIDFILE=$STATE/nats.pid
LOG=$STATE/nats.log

healthy() { curl -fsS "http://127.0.0.1:$MONITOR/healthz?js-enabled-only=true" >/dev/null 2>&1; }

case "${1:-}" in
  start)
    if healthy; then exit 0; fi
    mkdir -p "$STATE/nats"
    nats-server -js -a 127.0.0.1 -p "$PORT" -m "$MONITOR" -sd "$STATE/nats" >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 100); do
      if healthy; then echo "nats.sh: nats-server with JetStream on port $PORT"; exit 0; fi
      sleep 0.1
    done
    echo "nats.sh: nats-server did not become healthy within 10 s; its log:" >&2
    tail -30 "$LOG" >&2
    exit 1
    ;;
  stop|kill)
    [ -f "$PIDFILE" ] || exit 0
    pid=$(cat "$PIDFILE")
    if [ "$1" = kill ]; then kill -9 "$pid" 2>/dev/null || true; else kill "$pid" 2>/dev/null || true; fi
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$PIDFILE"
    ;;
  url) echo "nats://127.0.0.1:$PORT" ;;
  *) echo "usage: $0 start|stop|kill|url" >&2; exit 2 ;;
esac
