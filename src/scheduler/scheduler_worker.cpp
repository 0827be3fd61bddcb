// The scheduler background worker: one per database in orchestration.database_name.
//
// Read it top to bottom: set up signals, connect, announce itself so that commits can
// wake it, then loop forever: handle interrupts and reloads, run one pass in one
// transaction, sleep on the latch until woken, until a retry or expiry is due, or until
// the poll interval passes.
#include "pg/boundary.hpp"

extern "C" {
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

PGDLLEXPORT void orch_scheduler_main(Datum slot);
}

#include <algorithm>

#include <memory>
#include <vector>

#include "config/gucs.hpp"
#include "executors/container_executor.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"
#include "scheduler/dispatch.hpp"
#include "workers/wakeup.hpp"

namespace {

constexpr const char* kName = "pg_orchestration scheduler";

bool extension_installed() {
  orch::pg::Rows rows = orch::pg::spi_run(
      "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_orchestration'");
  return rows.size() == 1;
}

// What the loop keeps between passes.
struct SchedulerState {
  std::string database;
  std::int64_t round = 0;
  std::unique_ptr<orch::executors::ContainerExecutor> executor;  // made on first use
  std::vector<orch::executors::FinishedJob> unrecorded;  // kept until their transaction commits
  bool recovered = false;  // crash recovery of container nodes done
};

// One pass; returns how long to sleep before the next (0: go on at once).
long run_once(SchedulerState& state) {
  long sleep_ms = orch::config::poll_interval_ms;
  std::vector<orch::executors::ContainerJob> launches;
  bool recovered_now = false;
  try {
    orch::pg::run_transaction("pg_orchestration: scheduling", [&] {
      launches.clear();
      if (!extension_installed()) return;  // CREATE EXTENSION has not run (yet)
      if (!state.executor) state.executor = std::make_unique<orch::executors::ContainerExecutor>();
      if (!state.recovered) {
        launches = orch::scheduler::containers_to_adopt(state.database);
        recovered_now = true;
      }
      for (auto& done : state.executor->take_finished()) state.unrecorded.push_back(std::move(done));
      orch::scheduler::record_containers(state.unrecorded);
      for (std::int64_t node : orch::scheduler::cancelled_in_flight(state.executor->in_flight()))
        state.executor->cancel(node);
      orch::scheduler::PassResult pass = orch::scheduler::run_pass(state.round, state.database);
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
    state.unrecorded.clear();
    if (recovered_now) state.recovered = true;
    for (auto& job : launches) state.executor->launch(std::move(job));
  } catch (const std::exception& e) {
    // A failed pass is logged and retried after the poll interval; the worker stays up.
    orch::pg::log_worker_error(kName, e);
    orch::pg::spi_forget_plans();
  }
  return sleep_ms;
}

void scheduler_loop(int slot, const char* database) {
  SchedulerState state;
  state.database = database;
  MemoryContext loop_context = orch::pg::guard([] {
    return AllocSetContextCreate(TopMemoryContext, "pg_orchestration scheduler loop",
                                 ALLOCSET_DEFAULT_SIZES);
  });
  orch::pg::guard([&] {
    pgstat_report_appname(kName);
    orch::workers::register_worker(orch::workers::Worker::scheduler, slot);
    ereport(LOG, (errmsg("%s started in database \"%s\"", kName, database)));
  });

  for (;;) {
    orch::pg::guard([] {
      CHECK_FOR_INTERRUPTS();
      if (ConfigReloadPending) {
        ConfigReloadPending = false;
        ProcessConfigFile(PGC_SIGHUP);
      }
    });
    MemoryContext previous = MemoryContextSwitchTo(loop_context);
    long sleep_ms = run_once(state);
    MemoryContextSwitchTo(previous);
    orch::pg::guard([&] { MemoryContextReset(loop_context); });
    if (sleep_ms > 0) {
      // Woken by a commit (the latch), a finished container (the executor's pipe), a
      // due retry or expiry, or the poll interval.
      int wake_fd = state.executor ? state.executor->wake_fd() : PGINVALID_SOCKET;
      orch::pg::guard([&] {
        int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
        if (wake_fd != PGINVALID_SOCKET) events |= WL_SOCKET_READABLE;
        (void)WaitLatchOrSocket(MyLatch, events, wake_fd, sleep_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
      });
    }
  }
}

}  // namespace

void orch_scheduler_main(Datum slot_datum) {
  int slot = DatumGetInt32(slot_datum);
  pqsignal(SIGTERM, die);  // a pending SIGTERM ends the worker at its next interrupt check
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();

  std::vector<std::string> databases = orch::config::scheduler_databases();
  if (slot >= static_cast<int>(databases.size())) proc_exit(0);
  std::string database = databases[static_cast<std::size_t>(slot)];
  BackgroundWorkerInitializeConnection(database.c_str(), nullptr, 0);

  try {
    scheduler_loop(slot, database.c_str());
  } catch (const std::exception& e) {
    // Only a failure outside a pass (setting up, waiting) gets here. Exit non-zero: the
    // postmaster starts the worker again after bgw_restart_time.
    orch::pg::log_worker_error(kName, e);
  }
  proc_exit(1);
}
