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
