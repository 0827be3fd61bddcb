#!/usr/bin/python3
"""Latency as a caller sees it: a client process on its own connection calls
start_workflow (autocommit: the call is the transaction) and the figure is from just
before that call to the node's SUCCESS (finished_at), both read from this machine's
clock. Sequential: the next call starts once the run has finished (wait_for_run, as the
Python client's wait() does).

    caller_latency.py WORKFLOW RUNS persistent|new

"persistent": one connection for every call; "new": a new connection per call (psql, cron
jobs, many web handlers), its connection time included. Prints one line of key=value
figures in milliseconds: p50, p90, p99 of the latency; seen_p50 and seen_p90, from the
same moment to the caller's wait_for_run returning with the run's SUCCESS (what a caller
waits for: the node's end is stamped before its result is recorded and committed, and
the waiting session is woken by that commit); and the medians of where it went:
connect (a new connection's set-up; 0 for a persistent one), call (the start_workflow
statement, its commit included, as the client waits for it), wake (from the call's return
to the run's start by a worker: the worker's wake-up and its claim, and for a one-node run,
which starts with its node's attempt, everything up to its function; a worker can get there
before the client hears back, so this can be below 0), run (the run's start to the first
node's end: a one-node run's is its function) and, for a two-node workflow, hop (node 1's end to node 2's start).
Then the CPU each process used per run, in microseconds (cpu_*: the database's RULE
workers, relay and scheduler, the backends the client called, nats-server, and the client
itself): on a small machine they all compete for the same cores while a run goes through.

Uses the PG* environment for the connection (scheduler_bench.sh sets it).
"""
import glob
import os
import statistics
import subprocess
import sys
import time

import psycopg


def percentile(values, p):
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def cpu_ns(pid):
    """CPU time a process has used so far (every thread of it), in nanoseconds; 0 once gone."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def processes(conn):
    """The processes a run goes through, by name: this database's workers, and nats-server."""
    named = {}
    for pid, kind in conn.execute(
            """SELECT pid, backend_type FROM pg_stat_activity
               WHERE datname = current_database() AND backend_type LIKE 'pg_orchestration %%'"""):
        named.setdefault(kind.removeprefix("pg_orchestration ").replace(" ", "_"), []).append(pid)
    nats = subprocess.run(["pgrep", "-x", "nats-server"], capture_output=True, text=True).stdout.split()
    named["nats"] = [int(pid) for pid in nats]
    return named


def main():
    workflow, runs, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    persistent = psycopg.connect(autocommit=True)
    named = processes(persistent)
    before = {name: sum(cpu_ns(pid) for pid in pids) for name, pids in named.items()}
    client_before = time.process_time_ns()
    backends_ns = 0  # the backends that ran start_workflow (and wait_for_run, on the persistent one)
    persistent_pid = persistent.info.backend_pid
    persistent_before = cpu_ns(persistent_pid)
    calls = {}  # run id: client times before the call, once connected, once it returned
    seen = {}  # run id: client time when wait_for_run returned
    for _ in range(runs):
        t0 = time.time()
        conn = psycopg.connect(autocommit=True) if mode == "new" else persistent
        connected = time.time()
        run = conn.execute("SELECT orchestration.start_workflow(1, %s)", (workflow,)).fetchone()[0]
        calls[run] = (t0, connected, time.time())
        if mode == "new":
            backends_ns += cpu_ns(conn.info.backend_pid)
            conn.close()
        # As the Python client's wait() calls it (_calls.py): the timeout as a number.
        persistent.execute("SELECT orchestration.wait_for_run(%s, %s::float8, %s::text)", (run, 60.0, "settled"))
        seen[run] = time.time()
    cpu_us = {name: (sum(cpu_ns(pid) for pid in pids) - before[name]) / runs / 1000 for name, pids in named.items()}
    cpu_us["backends"] = (backends_ns + cpu_ns(persistent_pid) - persistent_before) / runs / 1000
    cpu_us["client"] = (time.process_time_ns() - client_before) / runs / 1000
    rows = persistent.execute(
        """SELECT r.id, extract(epoch FROM r.created_at), extract(epoch FROM r.started_at),
                  extract(epoch FROM min(n.finished_at) FILTER (WHERE n.node_key = 'n1')),
                  extract(epoch FROM max(n.finished_at)),
                  extract(epoch FROM min(n.started_at) FILTER (WHERE n.node_key = 'n2'))
           FROM orchestration.workflow_runs r JOIN orchestration.workflow_run_nodes n ON n.run_id = r.id
           WHERE r.id = ANY (%s) AND r.status = 'SUCCESS' GROUP BY r.id""",
        (list(calls),)).fetchall()
    if len(rows) != runs:
        sys.exit(f"caller_latency: {runs - len(rows)} of {runs} runs did not succeed")
    ms = lambda a, b: (float(b) - float(a)) * 1000.0
    latency, seen_latency, connect, call, wake, run, hop = [], [], [], [], [], [], []
    for run_id, _created, run_started, n1_done, done, n2_started in rows:
        t0, connected, returned = calls[run_id]
        latency.append(ms(t0, done))
        seen_latency.append(ms(t0, seen[run_id]))
        connect.append(ms(t0, connected))
        call.append(ms(connected, returned))
        wake.append(ms(returned, run_started))
        run.append(ms(run_started, n1_done))
        if n2_started is not None:
            hop.append(ms(n1_done, n2_started))
    figures = {
        "p50": statistics.median(latency), "p90": percentile(latency, 90), "p99": percentile(latency, 99),
        "seen_p50": statistics.median(seen_latency), "seen_p90": percentile(seen_latency, 90),
        "connect": statistics.median(connect), "call": statistics.median(call), "wake": statistics.median(wake), "run": statistics.median(run),
    }
    if hop:
        figures["hop"] = statistics.median(hop)
    line = " ".join(f"{key}={value:.2f}" for key, value in figures.items())
    print(line + " " + " ".join(f"cpu_{name}={value:.0f}" for name, value in cpu_us.items()))


if __name__ == "__main__":
    main()
