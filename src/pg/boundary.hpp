// The boundary between Postgres and C++: the one place that knows both error models.
//
// Postgres reports errors with ereport(ERROR), which longjmp()s to the nearest PG_TRY.
// A longjmp over a live C++ object skips its destructor; a C++ exception that reaches a
// Postgres frame terminates the backend. So errors may cross only here:
//
//   Postgres -> C++   ORCH_SQL_FUNCTION(name) defines a SQL-callable function whose body
//                     is ordinary C++. Any exception leaving the body is caught, every C++
//                     object is destroyed, and only then is the error raised with
//                     ereport(): a UserError keeps its SQLSTATE, message, detail and hint;
//                     a PgError (below) is re-thrown exactly as Postgres raised it; any
//                     other exception becomes an internal error naming the extension.
//                     Before the body runs, the database's pg_orchestration must be the
//                     library's version (extension_version.hpp).
//
//   C++ -> Postgres   pg::guard([&] { ...Postgres calls... }) runs Postgres code that may
//                     ereport(). An error becomes a PgError exception, which unwinds the
//                     C++ frames normally and is re-raised by ORCH_SQL_FUNCTION.
//
// The one rule for code inside guard(): create no C++ object with a destructor there and
// throw nothing out of it. Only plain Postgres calls belong inside; build strings and
// JSON before or after.
//
// A PgError must reach ORCH_SQL_FUNCTION (or be handled inside a subtransaction that is
// then rolled back): guard() flushed Postgres's error state, so swallowing a PgError
// would leave a transaction that believes nothing went wrong.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/elog.h"
}

#include <exception>
#include <string>
#include <type_traits>

namespace orch::pg {

// A Postgres error caught by guard(), on its way back to Postgres. Its message and
// SQLSTATE are its own copies: a worker reads them after the transaction was aborted,
// when the memory context the error was copied into may be gone.
class PgError : public std::exception {
 public:
  explicit PgError(ErrorData* edata)
      : edata_(edata), message_(edata && edata->message ? edata->message : "Postgres error"),
        sqlerrcode_(edata ? edata->sqlerrcode : ERRCODE_INTERNAL_ERROR) {}
  const char* what() const noexcept override { return message_.c_str(); }
  int sqlerrcode() const { return sqlerrcode_; }
  // Only to re-raise the error in the function call it happened in (ORCH_SQL_FUNCTION),
  // while the context it lives in, the one that was current in guard(), still exists.
  ErrorData* edata() const { return edata_; }

 private:
  ErrorData* edata_;
  std::string message_;
  int sqlerrcode_;
};

// Copies the error Postgres is handling into `context` and clears Postgres's error state.
ErrorData* take_error(MemoryContext context);

// Runs `fn` (returning nothing) under PG_TRY. Nothing it writes lives in this frame, so
// no local can be clobbered by the longjmp.
template <typename Fn>
void guard_void(Fn& fn) {
  MemoryContext caller_context = CurrentMemoryContext;
  ErrorData* volatile error = nullptr;
  PG_TRY();
  { fn(); }
  PG_CATCH();
  { error = take_error(caller_context); }
  PG_END_TRY();
  if (error) throw PgError(error);
}

template <typename Fn>
auto guard(Fn&& fn) -> decltype(fn()) {
  using Result = decltype(fn());
  if constexpr (std::is_void_v<Result>) {
    guard_void(fn);
  } else {
    static_assert(std::is_trivially_copyable_v<Result>,
                  "guard() returns plain values only; build C++ objects outside it");
    Result result{};
    auto store = [&] { result = fn(); };
    guard_void(store);
    return result;
  }
}

// Runs `body` for a SQL-callable function and turns any C++ exception into ereport().
Datum call_from_postgres(Datum (*body)(FunctionCallInfo), FunctionCallInfo fcinfo);

}  // namespace orch::pg

// Defines the SQL-callable function `name` (C linkage, version-1 calling convention)
// with the C++ body that follows the macro.
#define ORCH_SQL_FUNCTION(name)                                                     \
  static Datum name##_body(FunctionCallInfo fcinfo);                                \
  extern "C" {                                                                      \
  PG_FUNCTION_INFO_V1(name);                                                        \
  Datum name(PG_FUNCTION_ARGS) { return orch::pg::call_from_postgres(name##_body, fcinfo); } \
  }                                                                                 \
  static Datum name##_body([[maybe_unused]] FunctionCallInfo fcinfo)
