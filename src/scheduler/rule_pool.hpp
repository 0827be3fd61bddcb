// The RULE workers of a database, as the scheduler and they see each other in shared
// memory: which project each one holds, which attempt it runs and until when.
//
// RULE functions are tenants' code. PL/pgSQL can catch the statement timeout, so no
// timeout inside the process that runs one is final; only another process can end an
// attempt that ignores it. So RULE nodes run in RULE workers (orchestration.rule_workers
// per database), and the scheduler is their watchdog: an attempt still running at its
// deadline (timeout + kGraceMs) gets its process stopped (SIGTERM: FATAL, which no
// exception handler catches), its transaction is rolled back, and the scheduler records
// the attempt as timed out once the process is gone. Until then the run is kept out of
// every claim, so nothing runs it twice.
//
// One project holds at most rule_workers - 1 of them (at least one): a project whose
// functions hang leaves a worker to the others.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orch::scheduler::rule_pool {

// How long past its timeout an attempt may go on before its process is stopped: the
// statement timeout inside the attempt ends a function that does not catch it well
// before.
constexpr long kGraceMs = 1000;

// From _PG_init while preloading: asks for the shared memory.
void request_shared_memory();

// --- In a RULE worker -------------------------------------------------------------------

// The worker takes its place (slot: its database's, index: its number) and leaves it at
// exit; a stopped attempt recorded there stays for the scheduler.
void join(int slot, int index);

// The projects the other workers of this database hold as many of as one project may:
// not to be claimed by this worker now (a Postgres array literal), and the workers that
// hold them (by index), read at the same moment.
struct AtCap {
  std::string projects;
  std::vector<int> workers;
};
AtCap projects_at_cap();

// Takes `project` for this worker's transaction; false if others took it meanwhile up
// to the cap (then the claim must be undone). release_project() when the transaction ends.
bool hold_project(int project);
void release_project();

// Around one attempt. attempt_ended() returns false if the scheduler has already stopped
// it (its SIGTERM is on the way): the transaction must not commit.
void attempt_started(std::int64_t node, std::int64_t run, int timeout_seconds);
bool attempt_ended();

// --- In the scheduler --------------------------------------------------------------------

// An attempt whose worker was stopped and is gone, to be recorded as timed out.
struct StoppedAttempt {
  int entry;  // its place in shared memory (forget_stopped)
  std::int64_t node, run;
  std::string started_at;  // timestamptz text
  int timeout_seconds;
};

// Stops (SIGTERM) every worker of database `slot` whose attempt is past its deadline.
void stop_overdue(int slot);

// The stopped attempts whose process has exited (its transaction is rolled back).
std::vector<StoppedAttempt> stopped_attempts(int slot);

// After the transaction that recorded it committed.
void forget_stopped(int slot, int entry);

// Runs of stopped attempts not recorded yet: no claim may take their nodes.
std::vector<std::int64_t> held_runs(int slot);

// Milliseconds until the next deadline of a running attempt (-1: none).
long ms_to_next_deadline(int slot);

// The next claim round's number: one sequence for the scheduler and the RULE workers of a
// database (agent_runs.scheduler_round), `local` where there is no shared memory.
std::int64_t next_round(int slot, std::int64_t& local);

// The shared memory's generation: different after every crash restart (crash_marker.hpp).
std::uint64_t generation();

// Whether RULE nodes are the RULE workers' (else the scheduler runs them itself:
// orchestration.rule_workers = 0).
bool enabled();

}  // namespace orch::scheduler::rule_pool
