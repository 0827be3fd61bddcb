// The scheduler background worker: one per database in orchestration.database_name.
//
// Read it top to bottom: set up signals, connect, announce itself so that commits can
// wake it, then loop forever: handle interrupts and reloads, run one pass in one
// transaction, sleep on the latch until woken, until a retry or expiry is due, or until
// the poll interval passes (after a pass that failed, a shorter while: FailureBackoff).
//
// It runs container nodes and leaves RULE nodes to the RULE workers (rule_worker.cpp),
// whose watchdog it is: an attempt past its deadline has its worker stopped, and is
// recorded here as timed out once the process is gone (rule_pool.hpp).
#include "pg/boundary.hpp"

extern "C" {
#include "miscadmin.h"

PGDLLEXPORT void orch_scheduler_main(Datum slot);
}

#include <algorithm>

#include <memory>
#include <vector>

#include "config/gucs.hpp"
#include "executors/container_executor.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"
#include "scheduler/crash_marker.hpp"
#include "scheduler/dispatch.hpp"
#include "scheduler/rule_pool.hpp"
#include "workers/worker_main.hpp"

namespace {

constexpr const char* kName = "pg_orchestration scheduler";
// How soon results of a run locked by someone else, or of a stopped RULE worker that has
// not exited yet, are tried again.
constexpr long kDeferredRetryMs = 100;

using orch::workers::extension_ready;
namespace rule_pool = orch::scheduler::rule_pool;

// What the loop keeps between passes.
struct SchedulerState final : orch::workers::WorkerLoop {
  std::string database;
  int slot = 0;  // the database's, in orchestration.database_name
  std::int64_t round = 0;  // the last claim round's number where there is no shared counter
  std::unique_ptr<orch::executors::ContainerExecutor> executor;  // made on first use
  std::vector<orch::executors::FinishedJob> unrecorded;  // kept until their transaction commits
  bool recovered = false;  // crash recovery of container nodes done
  bool crashes_noted = false;  // the crash-loop breaker's leftovers (note_crashes_left)

  long run_once() override;
  // Woken by a commit (the latch), a finished container (the executor's pipe), a due
  // retry or expiry, or the poll interval.
  std::vector<int> wake_fds() const override { return {executor ? executor->wake_fd() : -1}; }
};

// One pass; returns how long to sleep before the next (0: go on at once).
long SchedulerState::run_once() {
  SchedulerState& state = *this;
  long sleep_ms = orch::config::poll_interval_ms;
  std::vector<orch::executors::ContainerJob> launches;
  std::vector<orch::executors::FinishedJob> deferred;
  std::vector<int> stopped_recorded;  // stopped attempts recorded (their entries)
  bool recovered_now = false;
  bool rule_workers = rule_pool::enabled();
  rule_pool::stop_overdue(state.slot);  // and again after the pass, which may have taken long
  try {
    if (!state.crashes_noted) {
      state.crashes_noted = orch::scheduler::note_crashes_left();
    }
    orch::pg::run_transaction("pg_orchestration: scheduling", [&] {
      launches.clear();
      if (!extension_ready()) return;  // not installed (yet), or another version's objects
      if (!state.executor) state.executor = std::make_unique<orch::executors::ContainerExecutor>();
      if (!state.recovered) {
        launches = orch::scheduler::containers_to_adopt(state.database);
        recovered_now = true;
      }
      for (auto& done : state.executor->take_finished()) state.unrecorded.push_back(std::move(done));
      deferred = orch::scheduler::record_containers(state.unrecorded);
      stopped_recorded = orch::scheduler::record_stopped(rule_pool::stopped_attempts(state.slot));
      for (std::int64_t node : orch::scheduler::cancelled_in_flight(state.executor->in_flight()))
        state.executor->cancel(node);
      std::vector<std::int64_t> finished;  // deferred results: their containers are done
      for (const auto& done : deferred) finished.push_back(done.job.node_id);
      orch::scheduler::PassResult pass = orch::scheduler::run_pass(
          state.round, state.database, state.slot,
          rule_workers ? orch::scheduler::Claiming::containers : orch::scheduler::Claiming::all, finished);
      for (auto& job : pass.launches) launches.push_back(std::move(job));
      if (pass.budget_spent) sleep_ms = 0;
      else if (pass.next_due_ms >= 0) sleep_ms = std::min(sleep_ms, pass.next_due_ms);
    });
    // Committed: the results are recorded (so their containers can go), and the nodes of
    // the new containers are RUNNING (so they can start).
    std::vector<std::string> recorded;
    for (const auto& done : state.unrecorded)
      if (!done.outcome.container_id.empty()) recorded.push_back(done.outcome.container_id);
    if (state.executor && !state.unrecorded.empty())
      state.executor->remove_later(std::move(recorded), state.unrecorded.front().job.address);
    state.unrecorded = std::move(deferred);
    if (!state.unrecorded.empty()) sleep_ms = std::min(sleep_ms, kDeferredRetryMs);
    if (recovered_now) state.recovered = true;
    for (int entry : stopped_recorded) rule_pool::forget_stopped(state.slot, entry);
    // RULE nodes this pass made runnable wake a RULE worker at commit (record_attempts,
    // skip_node); a timed-out attempt recorded here may be retried: its next due time is
    // theirs to see.
    if (!stopped_recorded.empty() && rule_workers) orch::workers::wake_now(orch::workers::Worker::rule);
    orch::scheduler::pass_succeeded();
    for (auto& job : launches) state.executor->launch(std::move(job));
  } catch (const std::exception& e) {
    // A failed pass is logged and tried again soon, carefully (pass_failed): it held every
    // project's nodes, which wait for it. The worker stays up. Its results are all kept,
    // the deferred ones too, for the next pass to record.
    for (auto& done : deferred) state.unrecorded.push_back(std::move(done));
    sleep_ms = orch::scheduler::pass_failed();
    orch::pg::log_worker_error(kName, e);
    orch::pg::spi_forget_plans();
  }
  // The watchdog: RULE attempts past their deadline are stopped now, and the scheduler
  // wakes for the next deadline, and soon while a stopped attempt waits to be recorded.
  rule_pool::stop_overdue(state.slot);
  long deadline_ms = rule_pool::ms_to_next_deadline(state.slot);
  if (deadline_ms >= 0) sleep_ms = std::min(sleep_ms, deadline_ms);
  if (!rule_pool::held_runs(state.slot).empty()) sleep_ms = std::min(sleep_ms, kDeferredRetryMs);
  return sleep_ms;
}

}  // namespace

void orch_scheduler_main(Datum slot) {
  orch::workers::run_worker(slot, orch::workers::Worker::scheduler, kName,
                            [](const std::string& database, int slot, int) -> std::unique_ptr<orch::workers::WorkerLoop> {
                              auto state = std::make_unique<SchedulerState>();
                              state->database = database;
                              state->slot = slot;
                              orch::scheduler::crash_marker::open("scheduler-" + std::to_string(MyDatabaseId),
                                                                  rule_pool::generation());
                              return state;
                            });
}
