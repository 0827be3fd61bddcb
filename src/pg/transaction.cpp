#include "pg/transaction.hpp"

extern "C" {
#include "access/xact.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
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

void commit_transaction() {
  guard([] {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_stat(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
}

void abort_transaction() {
  // The error was already copied and flushed by guard(); what is left is the transaction.
  HOLD_INTERRUPTS();
  AbortCurrentTransaction();
  RESUME_INTERRUPTS();
  pgstat_report_activity(STATE_IDLE, nullptr);
}

std::optional<SubtransactionError> run_subtransaction(void (*fn)(void* arg), void* arg) {
  MemoryContext caller_context = CurrentMemoryContext;
  ResourceOwner caller_owner = CurrentResourceOwner;
  guard([] { BeginInternalSubTransaction(nullptr); });
  MemoryContextSwitchTo(caller_context);

  ErrorData* volatile error = nullptr;
  PG_TRY();
  {
    fn(arg);
    ReleaseCurrentSubTransaction();
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller_context);
    error = CopyErrorData();
    FlushErrorState();
    RollbackAndReleaseCurrentSubTransaction();
  }
  PG_END_TRY();
  MemoryContextSwitchTo(caller_context);
  CurrentResourceOwner = caller_owner;

  if (!error) return std::nullopt;
  SubtransactionError result{error->message ? error->message : "unknown error",
                             unpack_sql_state(error->sqlerrcode)};
  guard([&] { FreeErrorData(error); });
  return result;
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

void log_worker_error(const char* worker, const std::exception& error) {
  std::string message = error.what();  // ereport at LOG returns, but it is guarded all the same
  guard([&] { ereport(LOG, (errmsg("%s: %s", worker, message.c_str()))); });
}

}  // namespace orch::pg
