// SQL-callable functions of the workflow engine.
#include "core/workflow/workflow_spec.hpp"
#include "pg/boundary.hpp"
#include "pg/jsonb.hpp"
#include "workers/wakeup.hpp"

// normalize_workflow_spec(spec jsonb) returns jsonb
ORCH_SQL_FUNCTION(orch_normalize_workflow_spec) {
  nlohmann::json spec = orch::pg::arg_json(fcinfo, 0);
  return orch::pg::json_datum(orch::workflow::normalize_workflow_spec(spec));
}

// wake_scheduler() returns void: wake this database's scheduler when the transaction commits
ORCH_SQL_FUNCTION(orch_wake_scheduler) {
  orch::pg::guard([] { orch::workers::request_wake_at_commit(orch::workers::Worker::scheduler); });
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
