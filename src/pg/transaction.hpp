// Transactions and subtransactions for the background workers, each guarded.
//
// A worker does its work in short transactions: run_transaction(fn) starts one with SPI
// connected and a snapshot, runs fn, and commits; if fn or the commit throws (a deferred
// trigger, a full NOTIFY queue), the transaction is aborted and the exception goes on to
// the caller, which logs it and carries on. (Left unaborted, a failed commit would keep
// its locks, and every later transaction of the worker would fail to begin.)
#pragma once

#include <optional>
#include <string>

#include "pg/boundary.hpp"

extern "C" {
#include "utils/resowner.h"
}

namespace orch::pg {

void begin_transaction(const char* activity);
// Commits, in `caller`: the context current before the transaction began, which outlives
// it, so that an error the commit raises is copied there (SPI's context is gone by then,
// and the transaction's goes with the abort). It is the current context afterwards.
void commit_transaction(MemoryContext caller);
// Cleans up after an error: aborts the transaction (if one was begun), frees SPI, and
// makes `caller` the current context again.
void abort_transaction(MemoryContext caller);

template <typename Fn>
void run_transaction(const char* activity, Fn&& fn) {
  MemoryContext caller = CurrentMemoryContext;
  try {
    begin_transaction(activity);
    fn();
    commit_transaction(caller);
  } catch (...) {
    abort_transaction(caller);
    throw;
  }
}

// What a failed subtransaction raised.
struct SubtransactionError {
  std::string message;
  std::string sqlstate;  // five characters, e.g. "57014" for a statement timeout
};

// A subtransaction for work whose failure must stay its own (one RULE attempt, one result
// that cannot be stored): begun by the constructor, then committed (its work joins the
// surrounding transaction) or rolled back. try_subtransaction is the way to use it.
class Subtransaction {
 public:
  Subtransaction();
  void commit();
  void rollback();
 private:
  MemoryContext context_;
  ResourceOwner owner_;
};

// The error an exception carries: a Postgres error's message and SQLSTATE, or any other
// exception's text with XX000.
SubtransactionError subtransaction_error(const std::exception& error);

// Runs fn, ordinary C++ that may call guarded Postgres code (spi_run), in a
// subtransaction: if it throws, only its work is rolled back and the error is returned;
// the surrounding transaction goes on.
template <typename Fn>
std::optional<SubtransactionError> try_subtransaction(Fn&& fn) {
  Subtransaction sub;
  try {
    fn();
    sub.commit();  // inside: a release that fails is rolled back too, as PL/pgSQL does
  } catch (const std::exception& e) {
    SubtransactionError error = subtransaction_error(e);
    sub.rollback();
    return error;
  }
  return std::nullopt;
}

// The same for a plain function of Postgres calls (the RULE executor's call, which keeps
// no C++ object alive across Postgres code): fn runs inside guard().
inline std::optional<SubtransactionError> run_subtransaction(void (*fn)(void* arg), void* arg) {
  return try_subtransaction([&] { guard([&] { fn(arg); }); });
}

// A worker's statement timer (STATEMENT_TIMEOUT, armed around a RULE attempt or a
// metrics scrape) is stopped, and a cancel it raised after the statement's last interrupt
// check is dropped: left pending, it would fail the worker's next statement.
void stop_statement_timer();

// Logs an exception caught in a worker (at LOG, with the worker's name).
void log_worker_error(const char* worker, const std::exception& error);

}  // namespace orch::pg
