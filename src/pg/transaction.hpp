// Transactions and subtransactions for the background workers, each guarded.
//
// A worker does its work in short transactions: run_transaction(fn) starts one with SPI
// connected and a snapshot, runs fn, and commits; if fn throws, the transaction is
// aborted and the exception goes on to the caller, which logs it and carries on.
#pragma once

#include <optional>
#include <string>

#include "pg/boundary.hpp"

extern "C" {
#include "utils/resowner.h"
}

namespace orch::pg {

void begin_transaction(const char* activity);
void commit_transaction();
// Cleans up after an error: aborts the transaction, frees SPI, forgets the error.
void abort_transaction();

template <typename Fn>
void run_transaction(const char* activity, Fn&& fn) {
  begin_transaction(activity);
  try {
    fn();
  } catch (...) {
    abort_transaction();
    throw;
  }
  commit_transaction();
}

// What a failed subtransaction raised.
struct SubtransactionError {
  std::string message;
  std::string sqlstate;  // five characters, e.g. "57014" for a statement timeout
};

// Runs fn in a subtransaction: if fn raises a Postgres error, only fn's work is rolled
// back and the error is returned; the surrounding transaction goes on. fn follows the
// rule of guard(): plain Postgres calls, no C++ objects with destructors.
std::optional<SubtransactionError> run_subtransaction(void (*fn)(void* arg), void* arg);

// Runs fn, ordinary C++ that may call guarded Postgres code (spi_run), in a
// subtransaction: if it throws, only its work is rolled back and the error's text is
// returned; the surrounding transaction goes on. For work whose failure must stay its
// own: one result that cannot be stored must not undo, or block, the others.
class Subtransaction {
 public:
  Subtransaction();   // begins it
  void commit();      // releases it (its work joins the surrounding transaction)
  void rollback();    // rolls it back
 private:
  MemoryContext context_;
  ResourceOwner owner_;
};

template <typename Fn>
std::optional<std::string> try_subtransaction(Fn&& fn) {
  Subtransaction sub;
  try {
    fn();
  } catch (const std::exception& e) {
    std::string message = e.what();
    sub.rollback();
    return message;
  }
  sub.commit();
  return std::nullopt;
}

// Logs an exception caught in a worker (at LOG, with the worker's name).
void log_worker_error(const char* worker, const std::exception& error);

}  // namespace orch::pg
