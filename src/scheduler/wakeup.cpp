#include "scheduler/wakeup.hpp"

extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
}

#include "config/gucs.hpp"

namespace orch::scheduler {
namespace {

struct Slot {
  pg_atomic_uint32 database;      // InvalidOid when no scheduler runs in this slot
  pg_atomic_uint32 procno_plus1;  // its PGPROC number + 1; 0 when none
};

struct SharedState {
  Slot slots[config::kMaxDatabases];
};

SharedState* shared = nullptr;  // null where the library was not preloaded
bool wake_requested = false;
bool callback_registered = false;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

void request_shared_memory() {
  if (previous_request_hook) previous_request_hook();
  RequestAddinShmemSpace(MAXALIGN(sizeof(SharedState)));
}

void attach_shared_memory() {
  if (previous_startup_hook) previous_startup_hook();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found = false;
  shared = static_cast<SharedState*>(
      ShmemInitStruct("pg_orchestration scheduler", sizeof(SharedState), &found));
  if (!found) {
    for (auto& slot : shared->slots) {
      pg_atomic_init_u32(&slot.database, InvalidOid);
      pg_atomic_init_u32(&slot.procno_plus1, 0);
    }
  }
  LWLockRelease(AddinShmemInitLock);
}

void wake_schedulers_of(Oid database) {
  if (!shared) return;
  for (auto& slot : shared->slots) {
    if (pg_atomic_read_u32(&slot.database) != database) continue;
    uint32 procno_plus1 = pg_atomic_read_u32(&slot.procno_plus1);
    // The slot may be stale (the worker just exited and its PGPROC was reused): a
    // spurious SetLatch is harmless, latches are always re-checked.
    if (procno_plus1 > 0) SetLatch(&ProcGlobal->allProcs[procno_plus1 - 1].procLatch);
  }
}

void on_transaction_end(XactEvent event, void*) {
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) {
    if (wake_requested) wake_schedulers_of(MyDatabaseId);
    wake_requested = false;
  } else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) {
    wake_requested = false;
  }
}

void leave_slot(int, Datum slot_index) {
  Slot& slot = shared->slots[DatumGetInt32(slot_index)];
  pg_atomic_write_u32(&slot.procno_plus1, 0);
  pg_atomic_write_u32(&slot.database, InvalidOid);
}

}  // namespace

void install_shared_memory_hooks() {
  previous_request_hook = shmem_request_hook;
  shmem_request_hook = request_shared_memory;
  previous_startup_hook = shmem_startup_hook;
  shmem_startup_hook = attach_shared_memory;
}

void register_scheduler(int slot_index) {
  if (!shared) return;
  Slot& slot = shared->slots[slot_index];
  pg_atomic_write_u32(&slot.database, MyDatabaseId);
  pg_atomic_write_u32(&slot.procno_plus1, static_cast<uint32>(MyProc->pgprocno) + 1);
  on_shmem_exit(leave_slot, Int32GetDatum(slot_index));
}

void request_wake_at_commit() {
  if (!callback_registered) {
    RegisterXactCallback(on_transaction_end, nullptr);
    callback_registered = true;
  }
  wake_requested = true;
}

}  // namespace orch::scheduler
