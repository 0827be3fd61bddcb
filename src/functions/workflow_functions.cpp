// SQL-callable functions of the workflow engine: normalizing a spec, and the runs a
// transaction started. (Waking the workers: wakeup_functions.cpp.)
#include "core/workflow/workflow_spec.hpp"
#include "pg/boundary.hpp"
#include "pg/jsonb.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
}

#include <algorithm>
#include <cstdint>
#include <vector>

// normalize_workflow_spec(spec jsonb) returns jsonb
ORCH_SQL_FUNCTION(orch_normalize_workflow_spec) {
  nlohmann::json spec = orch::pg::arg_json(fcinfo, 0);
  return orch::pg::json_datum(orch::workflow::normalize_workflow_spec(spec));
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
