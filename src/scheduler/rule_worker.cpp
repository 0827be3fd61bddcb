// A RULE worker: orchestration.rule_workers of them per database run RULE nodes, so that
// a function that ignores its timeout costs one process, which the scheduler can stop,
// and not the scheduler itself (rule_pool.hpp).
//
// Its loop is the scheduler's, smaller: count the crashes dead processes left (before its
// first claim), then one pass per transaction that claims RULE nodes of one project and
// runs them (dispatch.cpp),
// sleep until woken by a commit that made RULE nodes runnable, until a retry is due, or
// until the poll interval passes (after a pass that failed, a shorter while:
// FailureBackoff).
#include "pg/boundary.hpp"

extern "C" {
#include "miscadmin.h"

PGDLLEXPORT void orch_rule_worker_main(Datum arg);
}

#include <algorithm>
#include <memory>
#include <random>

#include "config/gucs.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"
#include "scheduler/crash_marker.hpp"
#include "scheduler/dispatch.hpp"
#include "scheduler/rule_pool.hpp"
#include "workers/worker_main.hpp"

namespace {

constexpr const char* kName = "pg_orchestration rule worker";

using orch::workers::extension_ready;
namespace rule_pool = orch::scheduler::rule_pool;

struct RuleWorkerState final : orch::workers::WorkerLoop {
  std::string database;
  int slot = 0;
  std::int64_t round = 0;        // the last claim round's number where there is no shared counter
  bool crashes_noted = false;    // the crash-loop breaker's leftovers (note_crashes_left)
  std::minstd_rand jitter{static_cast<unsigned>(MyProcPid)};
  bool looking_again = false;    // this pass is a look again (must_look_again, below)

  long run_once() override;
};

long RuleWorkerState::run_once() {
  long sleep_ms = orch::config::poll_interval_ms;
  bool moved = false;
  int served_project = 0;
  bool taken = false;
  bool failed = false;
  try {
    if (!crashes_noted) {
      crashes_noted = orch::scheduler::note_crashes_left();
    }
    orch::workers::take_requests_before_pass();
    orch::pg::run_transaction("pg_orchestration: running RULE nodes", [&] {
      if (!extension_ready()) return;
      orch::scheduler::PassResult pass =
          orch::scheduler::run_pass(round, database, slot, orch::scheduler::Claiming::rule_nodes);
      moved = pass.nodes > 0;
      served_project = pass.project;
      if (pass.budget_spent) sleep_ms = 0;
      else if (pass.next_due_ms >= 0) sleep_ms = std::min(sleep_ms, pass.next_due_ms);
    });
    orch::scheduler::pass_succeeded();
  } catch (const orch::scheduler::ProjectTaken&) {
    // Another worker took the project at the same moment: nothing ran, the claim is
    // undone; try again after a few milliseconds, each worker after its own (whatever it
    // was told meanwhile waits for that pass).
    sleep_ms = 1 + static_cast<long>(jitter() % 10);
    taken = true;
  } catch (const std::exception& e) {
    // Rolled back: the nodes it had claimed are PENDING again, and its project's others
    // wait behind them. The next pass, careful, comes soon (pass_failed).
    sleep_ms = orch::scheduler::pass_failed();
    orch::pg::log_worker_error(kName, e);
    orch::pg::spi_forget_plans();
    failed = true;
  }
  rule_pool::release_project();
  // RULE nodes this pass made runnable and did not run (past its room, a retry, a skipped
  // node's dependents) wake no other RULE worker at its commit: it looks again itself. So
  // it does when a commit woke it and its pass served a project (one of those the commit
  // may have released nodes of; not when the commit named the one project it released and
  // the pass served it; a claim that found nothing saw all there was), when others'
  // commits found every RULE worker busy, or when a worker their project's cap kept out
  // woke it while it ran; and it goes on looking while looking finds nodes, one project a
  // pass. (Container nodes its results made runnable wake the scheduler at commit.)
  if (taken) return sleep_ms;
  looking_again = orch::workers::must_look_again(served_project) || (looking_again && moved);
  // After a failed pass (which may have failed at its commit, having moved nodes), the
  // look waits for the back-off.
  if (looking_again && !failed) sleep_ms = 0;
  return sleep_ms;
}

}  // namespace

void orch_rule_worker_main(Datum arg) {
  orch::workers::run_worker(
      arg, orch::workers::Worker::rule, kName,
      [](const std::string& database, int slot, int index) -> std::unique_ptr<orch::workers::WorkerLoop> {
        auto state = std::make_unique<RuleWorkerState>();
        state->database = database;
        state->slot = slot;
        orch::scheduler::crash_marker::open("rule-" + std::to_string(MyDatabaseId) + "-" + std::to_string(index),
                                            rule_pool::generation());
        rule_pool::join(slot, index);
        return state;
      });
}
