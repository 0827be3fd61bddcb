#include "executors/rule_executor.hpp"

#include "pg/boundary.hpp"
#include "pg/transaction.hpp"

extern "C" {
#include "miscadmin.h"
#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
}

namespace orch::executors {
namespace {

// Set only around the function call, in this process; reset after every attempt, also
// when the call raised (run_rule resets it after the subtransaction).
Oid attempt_role = InvalidOid;
const char* attempt_call = nullptr;  // rule_attempt_call(); set and reset with attempt_role

// Everything the subtransaction needs and produces, as plain data: run_subtransaction's
// body may not hold C++ objects.
struct Call {
  Oid function;
  Oid role;
  const char* input;
  const char* description;  // rule_call()'s answer
  int timeout_ms;
  bool returned_null;
  char* output;  // palloc'd jsonb text
};

void call_rule_function(void* arg) {
  Call* call = static_cast<Call*>(arg);
  Oid saved_user;
  int saved_context;
  GetUserIdAndSecContext(&saved_user, &saved_context);
  // Settings the function makes (set_config(..., false) included) live in this nest level
  // and are undone below; on an error, aborting the subtransaction undoes them and
  // restores the user and security context.
  int nest_level = NewGUCNestLevel();
  // The worker's own search_path is pg_catalog only (worker_main.cpp); the function gets
  // PostgreSQL's default, as in a new session, unless it sets its own.
  (void)set_config_option("search_path", "\"$user\", public", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                          0, false);
  // Nor the worker's lock timeout: the attempt's own timeout bounds its waits.
  (void)set_config_option("lock_timeout", "0", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
  SetUserIdAndSecContext(call->role,
                         saved_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  attempt_role = call->role;
  attempt_call = call->description;
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
  AtEOXact_GUC(false, nest_level);
  SetUserIdAndSecContext(saved_user, saved_context);
}

}  // namespace

RuleOutcome run_rule(const std::string& function, const std::string& role,
                     const std::string& input, int timeout_seconds, const std::string& description) {
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
    outcome.error = "role \"" + role + "\", which the agent runs as, no longer exists";
    return outcome;
  }

  // fmgr checks no privilege, and privileges and owners change after the agent was set:
  // resolve_rule_function's checks again, before every attempt.
  enum class Refusal { none, execute, owner };
  Refusal refusal = pg::guard([&] {
    HeapTuple tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(function_oid));
    if (!HeapTupleIsValid(tuple)) return Refusal::execute;
    Form_pg_proc proc = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tuple));
    Oid owner = proc->proowner;
    Oid schema = proc->pronamespace;
    ReleaseSysCache(tuple);
    if (pg_proc_aclcheck(function_oid, role_oid, ACL_EXECUTE) != ACLCHECK_OK ||
        pg_namespace_aclcheck(schema, role_oid, ACL_USAGE) != ACLCHECK_OK)
      return Refusal::execute;
    // An owner who lacks the role's privileges could change the function to use them.
    if (!superuser_arg(owner) && !has_privs_of_role(owner, role_oid)) return Refusal::owner;
    return Refusal::none;
  });
  if (refusal == Refusal::execute) {
    outcome.error = "role \"" + role + "\" may not execute " + function +
                    " (a RULE agent's function runs as the role that last set it; GRANT EXECUTE to it and USAGE on its schema)";
    return outcome;
  }
  if (refusal == Refusal::owner) {
    outcome.error = function + " is now owned by a role without the privileges of \"" + role +
                    "\", which runs it; it was not run (set the agent again as its owner)";
    return outcome;
  }

  Call call{function_oid, role_oid, input.c_str(), description.c_str(), timeout_seconds * 1000, false, nullptr};
  auto error = pg::run_subtransaction(call_rule_function, &call);
  attempt_role = InvalidOid;
  attempt_call = nullptr;
  // Whatever happened, the timer must not fire later, in the scheduler's own work (nor a
  // cancel it raised after the function's last interrupt check: it would fail the worker's
  // next statement), and no session-level advisory lock the function took may outlive its
  // attempt.
  pg::stop_statement_timer();
  pg::guard([] { LockReleaseSession(USER_LOCKMETHOD); });
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

unsigned int rule_attempt_role() { return attempt_role; }

const char* rule_attempt_call() { return attempt_call; }

}  // namespace orch::executors
