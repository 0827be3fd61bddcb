// SQL-callable functions of the workflow engine.
#include "core/workflow/workflow_spec.hpp"
#include "pg/boundary.hpp"
#include "pg/jsonb.hpp"
#include "workers/wakeup.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <cstdint>
#include <vector>

// normalize_workflow_spec(spec jsonb) returns jsonb
ORCH_SQL_FUNCTION(orch_normalize_workflow_spec) {
  nlohmann::json spec = orch::pg::arg_json(fcinfo, 0);
  return orch::pg::json_datum(orch::workflow::normalize_workflow_spec(spec));
}

// wake_scheduler() returns void: at commit, wake this database's scheduler and a RULE
// worker (the transaction may have made nodes of either kind runnable)
ORCH_SQL_FUNCTION(orch_wake_scheduler) {
  orch::pg::guard([] {
    orch::workers::request_wake_at_commit(orch::workers::Worker::scheduler);
    orch::workers::request_wake_at_commit(orch::workers::Worker::rule);
  });
  return (Datum)0;
}

// wake_workers(rule_nodes boolean, container_nodes boolean) returns void: at commit, wake
// a RULE worker if RULE nodes became runnable, the scheduler if container nodes did
ORCH_SQL_FUNCTION(orch_wake_workers) {
  bool rule_nodes = orch::pg::guard([&] { return !PG_ARGISNULL(0) && PG_GETARG_BOOL(0); });
  bool container_nodes = orch::pg::guard([&] { return !PG_ARGISNULL(1) && PG_GETARG_BOOL(1); });
  orch::pg::guard([&] {
    if (rule_nodes) orch::workers::request_wake_at_commit(orch::workers::Worker::rule);
    if (container_nodes) orch::workers::request_wake_at_commit(orch::workers::Worker::scheduler);
  });
  return (Datum)0;
}

// reserve_run(run_id bigint) returns void: keep the scheduler off this run's row lock until
// the transaction ends (see workers/wakeup.hpp)
ORCH_SQL_FUNCTION(orch_reserve_run) {
  std::int64_t run_id = orch::pg::guard([&] { return PG_GETARG_INT64(0); });
  orch::pg::guard([&] { orch::workers::reserve_run_until_transaction_end(run_id); });
  return (Datum)0;
}

// wake_relay() returns void: wake this database's NATS relay when the transaction commits
// (a new outbox event, a changed NATS trigger)
ORCH_SQL_FUNCTION(orch_wake_relay) {
  orch::pg::guard([] { orch::workers::request_wake_at_commit(orch::workers::Worker::relay); });
  return (Datum)0;
}

// sleep_until_change(max_seconds double precision) returns void: wait_for_run's sleep.
// The first call of a transaction starts watching this database (workers/wakeup.hpp) and
// returns at once, so the caller looks at its runs once more before sleeping; later calls
// sleep until a commit here writes events, the time is up, or the backend is interrupted
// (a cancel, statement_timeout). Where it cannot watch (every slot taken) it sleeps 50 ms
// at most, and the caller's loop polls.
ORCH_SQL_FUNCTION(orch_sleep_until_change) {
  double max_seconds = orch::pg::guard([&] { return PG_GETARG_FLOAT8(0); });
  orch::workers::Watch watch = orch::pg::guard([] { return orch::workers::watch_until_transaction_end(); });
  if (watch.started_now) return (Datum)0;
  long timeout_ms = 0;
  if (max_seconds > 0) timeout_ms = max_seconds >= 86400.0 ? 86400L * 1000 : static_cast<long>(max_seconds * 1000.0 + 0.5);
  if (!watch.watching) timeout_ms = std::min(timeout_ms, 50L);
  orch::pg::guard([&] {
    if (timeout_ms > 0)
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  });
  return (Datum)0;
}

// The runs this backend started in its current transaction, for started_runs(): a writer
// whose INSERT fired start_workflow_trigger finds the run it started. Each is kept with
// the subtransaction that started it, so a ROLLBACK TO SAVEPOINT drops the runs it undid;
// the list ends with the transaction.
namespace {

struct StartedRun {
  std::int64_t run_id;
  SubTransactionId subtransaction;
};
std::vector<StartedRun> started_runs;
bool started_callbacks_registered = false;

void forget_started_runs(XactEvent event, void*) {
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
      event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
    started_runs.clear();
}

void follow_subtransactions(SubXactEvent event, SubTransactionId mine, SubTransactionId parent, void*) {
  if (event == SUBXACT_EVENT_COMMIT_SUB) {
    for (auto& run : started_runs)
      if (run.subtransaction == mine) run.subtransaction = parent;
  } else if (event == SUBXACT_EVENT_ABORT_SUB) {
    started_runs.erase(std::remove_if(started_runs.begin(), started_runs.end(),
                                      [&](const StartedRun& run) { return run.subtransaction == mine; }),
                       started_runs.end());
  }
}

}  // namespace

// note_started_run(run_id bigint) returns void: create_run's record of a run it started.
ORCH_SQL_FUNCTION(orch_note_started_run) {
  std::int64_t run_id = orch::pg::guard([&] { return PG_GETARG_INT64(0); });
  SubTransactionId subtransaction = orch::pg::guard([] { return GetCurrentSubTransactionId(); });
  if (!started_callbacks_registered) {
    orch::pg::guard([] {
      RegisterXactCallback(forget_started_runs, nullptr);
      RegisterSubXactCallback(follow_subtransactions, nullptr);
    });
    started_callbacks_registered = true;
  }
  started_runs.push_back({run_id, subtransaction});
  return (Datum)0;
}

// started_runs() returns bigint[]: the runs started in this transaction so far, in order.
ORCH_SQL_FUNCTION(orch_started_runs) {
  std::vector<Datum> ids;
  ids.reserve(started_runs.size());
  for (const auto& run : started_runs) ids.push_back(Int64GetDatum(run.run_id));
  return orch::pg::guard([&] {
    return PointerGetDatum(construct_array(ids.data(), static_cast<int>(ids.size()), INT8OID, 8, true, TYPALIGN_DOUBLE));
  });
}

// written_in_this_transaction(row_xmin xid) returns boolean: whether this transaction (or
// one of its subtransactions) wrote the row version, as wait_for_runs asks of a run's row.
ORCH_SQL_FUNCTION(orch_written_in_this_transaction) {
  return orch::pg::guard([&] { return BoolGetDatum(TransactionIdIsCurrentTransactionId(DatumGetTransactionId(PG_GETARG_DATUM(0)))); });
}
