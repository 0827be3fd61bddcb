#include "pg/transaction.hpp"

extern "C" {
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
}

namespace orch::pg {

void begin_transaction(const char* activity) {
  guard([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_orchestration: SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, activity);
  });
}

void commit_transaction(MemoryContext caller) {
  MemoryContextSwitchTo(caller);  // guard() copies an error into the context it starts in
  guard([] {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
  });
  MemoryContextSwitchTo(caller);  // the commit left TopMemoryContext current
  // Committed: what follows is bookkeeping, and its failure is no failure of the work
  // (the caller would take it for a rollback).
  try {
    guard([] {
      pgstat_report_stat(false);
      pgstat_report_activity(STATE_IDLE, nullptr);
    });
  } catch (const std::exception& e) {
    log_worker_error("pg_orchestration", e);
  }
}

void abort_transaction(MemoryContext caller) {
  // The error was already copied and flushed by guard(); what is left is the transaction.
  HOLD_INTERRUPTS();
  AbortCurrentTransaction();
  RESUME_INTERRUPTS();
  pgstat_report_activity(STATE_IDLE, nullptr);
  MemoryContextSwitchTo(caller);
}

SubtransactionError subtransaction_error(const std::exception& error) {
  if (const auto* pg_error = dynamic_cast<const PgError*>(&error))
    return {pg_error->what(), unpack_sql_state(pg_error->sqlerrcode())};
  return {error.what(), "XX000"};
}

Subtransaction::Subtransaction() : context_(CurrentMemoryContext), owner_(CurrentResourceOwner) {
  guard([] { BeginInternalSubTransaction(nullptr); });
  MemoryContextSwitchTo(context_);
}

void Subtransaction::commit() {
  guard([] { ReleaseCurrentSubTransaction(); });
  MemoryContextSwitchTo(context_);
  CurrentResourceOwner = owner_;
}

void Subtransaction::rollback() {
  // guard() already copied and flushed the error that brought us here.
  guard([] { RollbackAndReleaseCurrentSubTransaction(); });
  MemoryContextSwitchTo(context_);
  CurrentResourceOwner = owner_;
}

void stop_statement_timer() {
  guard([] {
    disable_timeout(STATEMENT_TIMEOUT, false);
    QueryCancelPending = false;
  });
}

void log_worker_error(const char* worker, const std::exception& error) {
  std::string message = error.what();  // ereport at LOG returns, but it is guarded all the same
  guard([&] { ereport(LOG, (errmsg("%s: %s", worker, message.c_str()))); });
}

}  // namespace orch::pg
