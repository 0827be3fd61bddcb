#include "executors/rule_executor.hpp"

#include "pg/boundary.hpp"
#include "pg/transaction.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/regproc.h"
#include "utils/timeout.h"
}

namespace orch::executors {
namespace {

// Everything the subtransaction needs and produces, as plain data: run_subtransaction's
// body may not hold C++ objects.
struct Call {
  Oid function;
  Oid role;
  const char* input;
  int timeout_ms;
  bool returned_null;
  char* output;  // palloc'd jsonb text
};

void call_rule_function(void* arg) {
  Call* call = static_cast<Call*>(arg);
  Oid saved_user;
  int saved_context;
  GetUserIdAndSecContext(&saved_user, &saved_context);
  // The function runs with the privileges of the role that registered the agent, never
  // the scheduler's (a superuser). Aborting the subtransaction restores the user on error.
  SetUserIdAndSecContext(call->role, saved_context | SECURITY_LOCAL_USERID_CHANGE);
  if (call->timeout_ms > 0) enable_timeout_after(STATEMENT_TIMEOUT, call->timeout_ms);

  Datum input = DirectFunctionCall1(jsonb_in, CStringGetDatum(call->input));
  FmgrInfo flinfo;
  fmgr_info(call->function, &flinfo);
  LOCAL_FCINFO(fcinfo, 1);
  InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, nullptr, nullptr);
  fcinfo->args[0].value = input;
  fcinfo->args[0].isnull = false;
  Datum result = FunctionCallInvoke(fcinfo);

  if (call->timeout_ms > 0) disable_timeout(STATEMENT_TIMEOUT, false);
  call->returned_null = fcinfo->isnull;
  if (!fcinfo->isnull) {
    Jsonb* jsonb = DatumGetJsonbP(result);
    call->output = JsonbToCString(nullptr, &jsonb->root, VARSIZE(jsonb));
  }
  SetUserIdAndSecContext(saved_user, saved_context);
}

}  // namespace

RuleOutcome run_rule(const std::string& function, const std::string& role,
                     const std::string& input, int timeout_seconds) {
  RuleOutcome outcome;
  Oid function_oid = pg::guard([&] {
    return DatumGetObjectId(
        DirectFunctionCall1(to_regprocedure, CStringGetTextDatum(function.c_str())));
  });
  if (function_oid == InvalidOid) {
    outcome.error = "the RULE function " + function + " no longer exists";
    return outcome;
  }
  Oid role_oid = pg::guard([&] { return get_role_oid(role.c_str(), true); });
  if (role_oid == InvalidOid) {
    outcome.error = "role \"" + role + "\", which registered the agent, no longer exists";
    return outcome;
  }

  Call call{function_oid, role_oid, input.c_str(), timeout_seconds * 1000, false, nullptr};
  auto error = pg::run_subtransaction(call_rule_function, &call);
  // Whatever happened, the timer must not fire later, in the scheduler's own work.
  pg::guard([] { disable_timeout(STATEMENT_TIMEOUT, false); });
  if (error) {
    outcome.error = error->sqlstate == "57014"
                        ? "timed out after " + std::to_string(timeout_seconds) + " s (" +
                              function + ")"
                        : error->message;
    return outcome;
  }
  if (call.returned_null) {
    outcome.error = function + " returned NULL; a RULE function must return a jsonb value";
    return outcome;
  }
  outcome.succeeded = true;
  outcome.output = call.output;
  pg::guard([&] { pfree(call.output); });
  return outcome;
}

}  // namespace orch::executors
