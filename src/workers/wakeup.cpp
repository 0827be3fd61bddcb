#include "workers/wakeup.hpp"

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

#include <vector>

#include "config/gucs.hpp"
#include "pg/shared_memory.hpp"

namespace orch::workers {
namespace {

constexpr int kWakeKinds = 2;  // what can be asked for at commit: Worker::scheduler, Worker::relay
// A slot's processes: the scheduler, the relay, then the RULE workers.
constexpr int kProcesses = 2 + config::kMaxRuleWorkers;

struct Slot {
  pg_atomic_uint32 database;                  // InvalidOid when no worker runs in this slot
  pg_atomic_uint32 procno_plus1[kProcesses];  // each worker's PGPROC number + 1; 0 when none
  pg_atomic_uint32 sleeping[kProcesses];      // 1 while the worker waits on its latch
  // 1: a RULE worker is to look again after its pass (tell_to_look_again).
  pg_atomic_uint32 look_again[kProcesses];
  // The one project whose nodes a commit that woke this sleeping RULE worker made
  // runnable (0: none named): a pass that served it need not look again for that commit.
  pg_atomic_uint32 woken_for[kProcesses];
};

int process_index(Worker worker, int index) {
  return worker == Worker::rule ? 2 + index : static_cast<int>(worker);
}

constexpr int kReservationSlots = 64;
// Backends in wait_for_run at once that are woken at commit; more wait in short sleeps.
constexpr int kWaiterSlots = 128;

struct SharedState {
  Slot slots[config::kMaxDatabases];
  pg_atomic_uint64 reserved_runs[kReservationSlots];  // 0: free
  pg_atomic_uint64 waiters[kWaiterSlots];             // database << 32 | PGPROC number + 1; 0: free
};

SharedState* shared = nullptr;  // null where the library was not preloaded
bool wake_requested[kWakeKinds] = {false, false};
bool rule_wake_requested = false;
// The project of the RULE nodes this transaction made runnable, when every request named
// the same one; kSeveralProjects when they did not (or one named none).
constexpr std::int64_t kSeveralProjects = -1;
std::int64_t rule_wake_project = 0;
// This process's place, when it is a worker (register_worker): a RULE worker looks again
// by itself after a pass that moved nodes, so its own commits wake no other RULE worker.
Slot* my_slot = nullptr;
int my_process = -1;
bool i_am_rule_worker = false;
bool released_rule_nodes = false;  // a RULE worker's commit made RULE nodes runnable (must_look_again)
// A RULE worker's requests to look that came before its pass began (take_requests_before_pass):
// any project, or the one project named (0: none).
bool asked_before_pass = false;
uint32 woken_for_before_pass = 0;
std::vector<int> my_reservations;  // slots this backend holds until its transaction ends
int my_waiter_slot = -1;           // the slot this backend watches from until its transaction ends
bool callback_registered = false;

// Made once by the postmaster (pg/shared_memory.hpp).
void init_shared_state(void* memory) {
  auto* state = static_cast<SharedState*>(memory);
  for (auto& slot : state->slots) {
    pg_atomic_init_u32(&slot.database, InvalidOid);
    for (auto& procno : slot.procno_plus1) pg_atomic_init_u32(&procno, 0);
    for (auto& sleeping : slot.sleeping) pg_atomic_init_u32(&sleeping, 0);
    for (auto& look_again : slot.look_again) pg_atomic_init_u32(&look_again, 0);
    for (auto& woken_for : slot.woken_for) pg_atomic_init_u32(&woken_for, 0);
  }
  for (auto& run : state->reserved_runs) pg_atomic_init_u64(&run, 0);
  for (auto& waiter : state->waiters) pg_atomic_init_u64(&waiter, 0);
}

uint64 waiter_of(Oid database, int pgprocno) {
  return (static_cast<uint64>(database) << 32) | (static_cast<uint64>(pgprocno) + 1);
}

// Like set_latch_of: a slot left by a backend that just ended costs a spurious SetLatch.
void wake_waiters_of(Oid database) {
  if (!shared) return;
  for (auto& waiter : shared->waiters) {
    uint64 value = pg_atomic_read_u64(&waiter);
    if (value == 0 || static_cast<Oid>(value >> 32) != database) continue;
    SetLatch(&ProcGlobal->allProcs[static_cast<uint32>(value & 0xffffffffu) - 1].procLatch);
  }
}

void set_latch_of(Slot& slot, int process) {
  uint32 procno_plus1 = pg_atomic_read_u32(&slot.procno_plus1[process]);
  // The slot may be stale (the worker just exited and its PGPROC was reused): a
  // spurious SetLatch is harmless, latches are always re-checked.
  if (procno_plus1 > 0) SetLatch(&ProcGlobal->allProcs[procno_plus1 - 1].procLatch);
}

// A busy RULE worker is told to look again after its pass with a flag as well as its
// latch: the function it runs may wait on the latch itself (pg_sleep, a lock) and reset it.
void tell_to_look_again(Slot& slot, int index) {
  int process = process_index(Worker::rule, index);
  pg_atomic_write_u32(&slot.look_again[process], 1);
  set_latch_of(slot, process);
}

// Wakes exactly the workers of that kind.
void wake_workers_of(Oid database, Worker worker) {
  if (!shared) return;
  for (auto& slot : shared->slots) {
    if (pg_atomic_read_u32(&slot.database) != database) continue;
    if (worker != Worker::rule) set_latch_of(slot, static_cast<int>(worker));
    else
      for (int index = 0; index < config::kMaxRuleWorkers; ++index) tell_to_look_again(slot, index);
  }
}

// New RULE work needs one RULE worker, not all of them: on two cores, every process woken
// for nothing competes with the one that runs the node (and with the caller). So the first
// sleeping RULE worker is woken (taking its flag, so that two commits at once wake two);
// when none sleeps, all are busy and each is told to look again after its pass (one that
// found nothing just now may be on its way to sleep: its latch is set too). The one woken
// looks again after its pass, too (its pass serves one project, and the commit may have
// made nodes of several runnable), unless the commit named the one project it released
// (`project`, 0: not named) and the pass served that project: a run started costs its
// worker one pass, not a second that finds nothing.
void wake_one_rule_worker(Oid database, std::int64_t project) {
  if (!shared) return;
  for (auto& slot : shared->slots) {
    if (pg_atomic_read_u32(&slot.database) != database) continue;
    for (int index = 0; index < config::kMaxRuleWorkers; ++index) {
      int process = process_index(Worker::rule, index);
      uint32 sleeping = 1;
      if (pg_atomic_read_u32(&slot.procno_plus1[process]) > 0 &&
          pg_atomic_compare_exchange_u32(&slot.sleeping[process], &sleeping, 0)) {
        if (project > 0 && project <= PG_INT32_MAX) {
          pg_atomic_write_u32(&slot.woken_for[process], static_cast<uint32>(project));
          set_latch_of(slot, process);
        } else {
          tell_to_look_again(slot, index);
        }
        return;
      }
    }
  }
  wake_workers_of(database, Worker::rule);
}

// Runnable RULE nodes are the RULE workers', or the scheduler's when there are none.
void wake_for_rule_nodes(Oid database, std::int64_t project) {
  if (config::rule_workers == 0) wake_workers_of(database, Worker::scheduler);
  else wake_one_rule_worker(database, project);
}

void release_transaction_slots() {
  for (int slot : my_reservations) pg_atomic_write_u64(&shared->reserved_runs[slot], 0);
  my_reservations.clear();
  if (my_waiter_slot >= 0) pg_atomic_write_u64(&shared->waiters[my_waiter_slot], 0);
  my_waiter_slot = -1;
}

void on_transaction_end(XactEvent event, void*) {
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) {
    release_transaction_slots();
    if (wake_requested[static_cast<int>(Worker::scheduler)]) wake_workers_of(MyDatabaseId, Worker::scheduler);
    if (rule_wake_requested) {
      if (i_am_rule_worker) released_rule_nodes = true;
      else wake_for_rule_nodes(MyDatabaseId, rule_wake_project);
    }
    if (wake_requested[static_cast<int>(Worker::relay)]) {
      wake_workers_of(MyDatabaseId, Worker::relay);
      wake_waiters_of(MyDatabaseId);  // events were written: a run or a node changed
    }
    for (bool& requested : wake_requested) requested = false;
    rule_wake_requested = false;
    rule_wake_project = 0;
  } else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE) {
    // A prepared transaction commits later, perhaps in another backend: its work is found
    // by the next poll.
    release_transaction_slots();
    for (bool& requested : wake_requested) requested = false;
    rule_wake_requested = false;
    rule_wake_project = 0;
  }
}

void register_transaction_callback() {
  if (callback_registered) return;
  RegisterXactCallback(on_transaction_end, nullptr);
  callback_registered = true;
}

// The slot's database stays: the other worker of the same database may still be there,
// and the next worker of this slot serves the same database (the GUC needs a restart).
void leave_slot(int, Datum packed) {
  int process = DatumGetInt32(packed) / config::kMaxDatabases;
  Slot& slot = shared->slots[DatumGetInt32(packed) % config::kMaxDatabases];
  pg_atomic_write_u32(&slot.procno_plus1[process], 0);
  pg_atomic_write_u32(&slot.sleeping[process], 0);  // a worker stopped in its sleep is not asleep there
  pg_atomic_write_u32(&slot.look_again[process], 0);
  pg_atomic_write_u32(&slot.woken_for[process], 0);
}

}  // namespace

void request_shared_memory() {
  pg::request_shared_struct("pg_orchestration workers", sizeof(SharedState), init_shared_state,
                            reinterpret_cast<void**>(&shared));
}

void register_worker(Worker worker, int slot_index, int index) {
  if (!shared || worker == Worker::metrics) return;
  int process = process_index(worker, index);
  Slot& slot = shared->slots[slot_index];
  pg_atomic_write_u32(&slot.database, MyDatabaseId);
  pg_atomic_write_u32(&slot.procno_plus1[process], static_cast<uint32>(MyProc->pgprocno) + 1);
  my_slot = &slot;
  my_process = process;
  i_am_rule_worker = worker == Worker::rule;
  on_shmem_exit(leave_slot, Int32GetDatum(process * config::kMaxDatabases + slot_index));
}

void request_wake_at_commit(Worker worker, std::int64_t project) {
  register_transaction_callback();
  if (worker != Worker::rule) {
    wake_requested[static_cast<int>(worker)] = true;
    return;
  }
  // Savepoints are not followed: a request a rolled-back one made still counts, which at
  // worst costs a look that finds nothing.
  if (!rule_wake_requested) rule_wake_project = project > 0 ? project : kSeveralProjects;
  else if (rule_wake_project != project) rule_wake_project = kSeveralProjects;
  rule_wake_requested = true;
}

void wake_now(Worker worker) {
  if (worker == Worker::rule) wake_for_rule_nodes(MyDatabaseId, 0);
  else wake_workers_of(MyDatabaseId, worker);
}

void wake_rule_worker(int index) {
  if (!shared || index < 0 || index >= config::kMaxRuleWorkers) return;
  for (auto& slot : shared->slots)
    if (pg_atomic_read_u32(&slot.database) == MyDatabaseId) tell_to_look_again(slot, index);
}

void take_requests_before_pass() {
  if (!my_slot) return;
  // Or'ed into what a pass undone by ProjectTaken left (it never reached must_look_again).
  if (pg_atomic_exchange_u32(&my_slot->look_again[my_process], 0) != 0) asked_before_pass = true;
  uint32 woken_for = pg_atomic_exchange_u32(&my_slot->woken_for[my_process], 0);
  if (woken_for == 0) return;
  if (woken_for_before_pass != 0 && woken_for_before_pass != woken_for) asked_before_pass = true;  // two: any
  woken_for_before_pass = woken_for;
}

bool must_look_again(int served_project) {
  bool again = released_rule_nodes;
  released_rule_nodes = false;
  // Asked while the pass ran: what it was asked for may have been committed after its claim.
  if (my_slot && pg_atomic_exchange_u32(&my_slot->look_again[my_process], 0) != 0) again = true;
  if (my_slot) {
    uint32 woken_for = pg_atomic_exchange_u32(&my_slot->woken_for[my_process], 0);
    if (woken_for != 0 && static_cast<std::int64_t>(woken_for) != served_project) again = true;
  }
  // Asked before the pass began: its claim saw what that was for (it was committed before
  // the flag was set). A claim that found nothing looked at every project this worker may
  // serve (the others' holders it woke itself, rule_pool::projects_at_cap); one that
  // served a project passed over the others' nodes, perhaps those it was asked for (the
  // claim takes the first runnable node, whoever's it is), unless it was asked for that
  // one project alone.
  if (served_project != 0) {
    if (asked_before_pass) again = true;
    if (woken_for_before_pass != 0 && static_cast<std::int64_t>(woken_for_before_pass) != served_project)
      again = true;
  }
  asked_before_pass = false;
  woken_for_before_pass = 0;
  return again;
}

void set_sleeping(bool sleeping) {
  // An exchange, a full barrier: the flag is visible before the latch is looked at.
  if (my_slot) (void)pg_atomic_exchange_u32(&my_slot->sleeping[my_process], sleeping ? 1 : 0);
}

void reserve_run_until_transaction_end(std::int64_t run_id) {
  if (!shared || run_id <= 0) return;
  register_transaction_callback();
  for (int slot : my_reservations)
    if (pg_atomic_read_u64(&shared->reserved_runs[slot]) == static_cast<uint64>(run_id)) return;
  for (int slot = 0; slot < kReservationSlots; ++slot) {
    uint64 expected = 0;
    if (pg_atomic_compare_exchange_u64(&shared->reserved_runs[slot], &expected,
                                       static_cast<uint64>(run_id))) {
      my_reservations.push_back(slot);
      return;
    }
  }
}

Watch watch_until_transaction_end() {
  if (my_waiter_slot >= 0) return {false, true};
  if (!shared) return {false, false};
  register_transaction_callback();
  for (int slot = 0; slot < kWaiterSlots; ++slot) {
    uint64 expected = 0;
    if (pg_atomic_compare_exchange_u64(&shared->waiters[slot], &expected, waiter_of(MyDatabaseId, MyProc->pgprocno))) {
      my_waiter_slot = slot;
      return {true, true};
    }
  }
  return {false, false};
}

std::vector<std::int64_t> reserved_runs() {
  std::vector<std::int64_t> runs;
  if (shared)
    for (auto& run : shared->reserved_runs)
      if (uint64 id = pg_atomic_read_u64(&run); id != 0) runs.push_back(static_cast<std::int64_t>(id));
  return runs;
}

}  // namespace orch::workers
