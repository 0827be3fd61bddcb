// selftest_error_boundary(kind text): raises each kind of error through the C++/Postgres
// boundary on purpose, so a test (and an operator in doubt) can see that every one of
// them becomes an ordinary SQL error and the backend keeps working afterwards.
#include "pg/boundary.hpp"  // first: it includes postgres.h

extern "C" {
#include "utils/builtins.h"
}

#include <new>
#include <stdexcept>
#include <string>

#include "core/common/user_error.hpp"
#include "pg/jsonb.hpp"

ORCH_SQL_FUNCTION(orch_selftest_error_boundary) {
  std::string kind = orch::pg::arg_text(fcinfo, 0);
  if (kind == "none") return orch::pg::text_datum("ok");
  if (kind == "user_error")
    throw orch::UserError("a user error from C++", "with a detail", "and a hint");
  if (kind == "std_exception") throw std::runtime_error("a std::runtime_error from C++");
  if (kind == "bad_alloc") throw std::bad_alloc();
  if (kind == "unknown") throw 42;
  if (kind == "postgres_error") {
    // A Postgres error raised under C++ frames: int4in() ereports, guard() turns it
    // into PgError, and the boundary re-raises it with Postgres's own SQLSTATE.
    orch::pg::guard([] { return DirectFunctionCall1(int4in, CStringGetDatum("not a number")); });
  }
  throw orch::UserError("unknown selftest kind \"" + kind + "\"", {},
                        "Use none, user_error, std_exception, bad_alloc, unknown or "
                        "postgres_error.");
}
