// SQL-callable functions of the workflow engine.
#include "core/workflow/workflow_spec.hpp"
#include "pg/boundary.hpp"
#include "pg/jsonb.hpp"
#include "scheduler/wakeup.hpp"

// normalize_workflow_spec(spec jsonb) returns jsonb
ORCH_SQL_FUNCTION(orch_normalize_workflow_spec) {
  nlohmann::json spec = orch::pg::arg_json(fcinfo, 0);
  return orch::pg::json_datum(orch::workflow::normalize_workflow_spec(spec));
}

// wake_scheduler() returns void: wake this database's scheduler when the transaction commits
ORCH_SQL_FUNCTION(orch_wake_scheduler) {
  orch::pg::guard([] { orch::scheduler::request_wake_at_commit(); });
  return (Datum)0;
}

// reserve_run(run_id bigint) returns void: keep the scheduler off this run's row lock until
// the transaction ends (see scheduler/wakeup.hpp)
ORCH_SQL_FUNCTION(orch_reserve_run) {
  std::int64_t run_id = orch::pg::guard([&] { return PG_GETARG_INT64(0); });
  orch::pg::guard([&] { orch::scheduler::reserve_run_until_transaction_end(run_id); });
  return (Datum)0;
}
