// SQL-callable functions that wake the background workers at commit, keep them off a run
// a caller is about to lock, and let wait_for_run sleep until a commit changes runs: the
// SQL side of workers/wakeup.hpp.
#include "pg/boundary.hpp"
#include "workers/wakeup.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <cstdint>

// wake_scheduler() returns void: at commit, wake this database's scheduler and a RULE
// worker (the transaction may have made nodes of either kind runnable)
ORCH_SQL_FUNCTION(orch_wake_scheduler) {
  orch::pg::guard([] {
    orch::workers::request_wake_at_commit(orch::workers::Worker::scheduler);
    orch::workers::request_wake_at_commit(orch::workers::Worker::rule);
  });
  return (Datum)0;
}

// wake_workers(rule_nodes boolean, container_nodes boolean, project_id integer) returns
// void: at commit, wake a RULE worker if RULE nodes became runnable (those of project_id
// alone, when it is given), the scheduler if container nodes did
ORCH_SQL_FUNCTION(orch_wake_workers) {
  bool rule_nodes = orch::pg::guard([&] { return !PG_ARGISNULL(0) && PG_GETARG_BOOL(0); });
  bool container_nodes = orch::pg::guard([&] { return !PG_ARGISNULL(1) && PG_GETARG_BOOL(1); });
  std::int64_t project = orch::pg::guard([&] {
    return PG_NARGS() > 2 && !PG_ARGISNULL(2) ? static_cast<std::int64_t>(PG_GETARG_INT32(2)) : 0;
  });
  orch::pg::guard([&] {
    if (rule_nodes) orch::workers::request_wake_at_commit(orch::workers::Worker::rule, project);
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
