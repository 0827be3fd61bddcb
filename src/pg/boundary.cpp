#include "pg/boundary.hpp"

#include <cstdio>
#include <new>

#include "core/common/user_error.hpp"
#include "pg/extension_version.hpp"

namespace orch::pg {

ErrorData* take_error(MemoryContext context) {
  MemoryContextSwitchTo(context);
  ErrorData* error = CopyErrorData();
  FlushErrorState();
  return error;
}

namespace {

// What the catch blocks learned, in plain buffers: ereport() may run only after the
// exception object and every other C++ object are gone.
struct PendingError {
  ErrorData* postgres = nullptr;
  int sqlstate = ERRCODE_INTERNAL_ERROR;
  char message[2048] = "";
  char detail[2048] = "";
  char hint[1024] = "";
};

void copy(char* to, std::size_t size, const char* from) {
  std::snprintf(to, size, "%s", from ? from : "");
}

int sqlstate_code(const char* text) {
  if (!text || std::char_traits<char>::length(text) != 5) return ERRCODE_INTERNAL_ERROR;
  return MAKE_SQLSTATE(text[0], text[1], text[2], text[3], text[4]);
}

}  // namespace

Datum call_from_postgres(Datum (*body)(FunctionCallInfo), FunctionCallInfo fcinfo) {
  // A PG_TRY inside the body that was left by a C++ exception (the rule above broken)
  // would leave these pointing into dead stack frames; restore them before reporting.
  sigjmp_buf* saved_exception_stack = PG_exception_stack;
  ErrorContextCallback* saved_context_stack = error_context_stack;
  PendingError pending;
  try {
    require_current_version();
    return body(fcinfo);
  } catch (const PgError& e) {
    pending.postgres = e.edata();
  } catch (const UserError& e) {
    pending.sqlstate = sqlstate_code(e.sqlstate());
    copy(pending.message, sizeof pending.message, e.what());
    copy(pending.detail, sizeof pending.detail, e.detail().c_str());
    copy(pending.hint, sizeof pending.hint, e.hint().c_str());
  } catch (const std::bad_alloc&) {
    pending.sqlstate = ERRCODE_OUT_OF_MEMORY;
    copy(pending.message, sizeof pending.message, "out of memory in pg_orchestration");
  } catch (const std::exception& e) {
    std::snprintf(pending.message, sizeof pending.message,
                  "internal error in pg_orchestration: %s", e.what());
  } catch (...) {
    copy(pending.message, sizeof pending.message,
         "internal error in pg_orchestration: unknown C++ exception");
  }
  PG_exception_stack = saved_exception_stack;
  error_context_stack = saved_context_stack;

  if (pending.postgres) ReThrowError(pending.postgres);
  ereport(ERROR, (errcode(pending.sqlstate), errmsg_internal("%s", pending.message),
                  pending.detail[0] ? errdetail_internal("%s", pending.detail) : 0,
                  pending.hint[0] ? errhint("%s", pending.hint) : 0));
  pg_unreachable();
}

}  // namespace orch::pg
