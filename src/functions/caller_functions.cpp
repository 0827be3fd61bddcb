// Who is calling the API: calling_role() and calling_login(). In C because inside the
// scheduler a RULE attempt acts for its agent's role, which only the worker's own C code
// knows (executors/rule_executor); a setting would be something the function itself
// could change.
#include "executors/rule_executor.hpp"
#include "pg/boundary.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
}

namespace {

Datum role_name(Oid role) {
  return orch::pg::guard([&] {
    Name result = static_cast<Name>(palloc0(NAMEDATALEN));
    namestrcpy(result, GetUserNameFromId(role, false));
    return NameGetDatum(result);
  });
}

}  // namespace

// calling_role() returns name: the RULE attempt's role, else the SET ROLE role, else the
// login. SECURITY DEFINER functions change current_user, never these.
ORCH_SQL_FUNCTION(orch_calling_role) {
  Oid role = orch::executors::rule_attempt_role();
  if (role == InvalidOid) role = GetCurrentRoleId();  // InvalidOid: no SET ROLE
  if (role == InvalidOid) role = GetSessionUserId();
  return role_name(role);
}

// calling_login() returns name: the RULE attempt's role, else the login, whatever role
// the session has switched to.
ORCH_SQL_FUNCTION(orch_calling_login) {
  Oid role = orch::executors::rule_attempt_role();
  if (role == InvalidOid) role = GetSessionUserId();
  return role_name(role);
}

// in_rule_attempt() returns boolean: whether a RULE agent's function is the caller.
ORCH_SQL_FUNCTION(orch_in_rule_attempt) { return BoolGetDatum(orch::executors::rule_attempt_role() != InvalidOid); }

// rule_call() returns jsonb: inside a RULE attempt, what it was called for
// ({"capability", "agent", "run_id", "node_key", "attempt"}); NULL elsewhere. One function
// can serve several capabilities of its agent this way.
ORCH_SQL_FUNCTION(orch_rule_call) {
  const char* call = orch::executors::rule_attempt_call();
  if (!call) PG_RETURN_NULL();
  return orch::pg::guard([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(call)); });
}
