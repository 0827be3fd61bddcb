#!/usr/bin/env bash
# The local Docker engine for the tests and the demo (Debian's docker.io; dockerd runs as
# root here). Access to its socket is root on this host: see the README's security notes.
#
#   scripts/dockerd.sh start   start dockerd unless an engine already answers
#   scripts/dockerd.sh stop    stop it, if this script started it
set -euo pipefail
STATE=${ORCH_RUN_DIR:-/tmp/pg_orchestration}
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log

case "${1:-}" in
  start)
    if docker version >/dev/null 2>&1; then exit 0; fi
    mkdir -p "$STATE"
    dockerd >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 120); do
      if docker version >/dev/null 2>&1; then echo "dockerd.sh: Docker engine running"; exit 0; fi
      sleep 0.5
    done
    echo "dockerd.sh: dockerd did not answer within 60 s; its log:" >&2
    tail -30 "$LOG" >&2
    exit 1
    ;;
  stop)
    [ -f "$PIDFILE" ] || exit 0
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.5; done
    rm -f "$PIDFILE"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
