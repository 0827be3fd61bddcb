// The life of a background worker, shared by the scheduler, the RULE workers and the NATS
// relay: signals, connecting to the database of its slot, announcing itself for
// commit-time wake-ups, and a loop that handles interrupts and reloads, takes one turn in
// a memory context reset after it, and sleeps on the latch (and on the worker's own
// wake-up pipes) until woken or until the sleep the turn asked for ends. What a turn does,
// and what the loop keeps between turns, is the worker's own (WorkerLoop).
//
// "Turn" is one time round this loop. A claim round is something else: the nodes one
// claim_nodes call took (dispatch.cpp's ClaimRound, numbered in agent_runs.scheduler_round).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pg/boundary.hpp"
#include "workers/wakeup.hpp"

namespace orch::workers {

class WorkerLoop {
 public:
  virtual ~WorkerLoop() = default;
  // One turn; returns how long to sleep, in milliseconds (0: go on at once). Errors are
  // the turn's to catch and log: an exception that leaves it ends the worker.
  virtual long run_once() = 0;
  // File descriptors whose readability also ends the sleep (WakePipes); -1s are skipped.
  virtual std::vector<int> wake_fds() const { return {}; }
  // The configuration file was read again (SIGHUP).
  virtual void reloaded() {}
};

// `slot` is the database's place in orchestration.database_name, `index` the number of a
// RULE worker of that database (0 for the others).
using MakeLoop = std::unique_ptr<WorkerLoop> (*)(const std::string& database, int slot, int index);

// A bgw_main_arg: the database's slot and the worker's index.
Datum worker_arg(int slot, int index);

// Runs the worker of `arg` (worker_arg) until it is told to stop. Exits at once when
// orchestration.database_name has no database for the slot; after an error outside a
// turn, logs it and exits non-zero, so the postmaster starts it again after
// bgw_restart_time.
[[noreturn]] void run_worker(Datum arg, Worker worker, const char* name, MakeLoop make_loop);

// Whether this database has pg_orchestration at the library's version (in a transaction):
// not before CREATE EXTENSION, nor, after a new library was installed, before ALTER
// EXTENSION pg_orchestration UPDATE (which each worker process logs once when it finds
// another version, and once when the update is there).
bool extension_ready();

}  // namespace orch::workers
