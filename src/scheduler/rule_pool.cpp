#include "scheduler/rule_pool.hpp"

extern "C" {
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
}

#include <algorithm>

#include "config/gucs.hpp"
#include "core/common/array_literal.hpp"
#include "pg/boundary.hpp"
#include "pg/shared_memory.hpp"

namespace orch::scheduler::rule_pool {
namespace {

struct Attempt {
  std::int64_t node = 0;  // 0: none
  std::int64_t run = 0;
  TimestampTz started_at = 0;
  TimestampTz deadline = 0;
  int timeout_seconds = 0;
};

struct WorkerSlot {
  int pid;          // 0: no process
  int project;      // the project whose nodes it holds in its transaction (0: none)
  Attempt running;  // the attempt it runs now
  int stop_sent;    // the pid the scheduler sent SIGTERM (so: once per process)
};

// An attempt the scheduler stopped, until it is recorded. Apart from the workers: the
// record may wait (its run or agent held by someone) while the worker's next process
// runs, and may need stopping, too.
struct Stopped {
  int pid;     // the process stopped; 0: a free entry
  int worker;  // its slot
  Attempt attempt;
};
constexpr int kMaxStopped = 64;

// Every field of a database's workers is read and written under its spinlock, for a
// few instructions at a time.
struct DatabasePool {
  slock_t mutex;
  WorkerSlot workers[config::kMaxRuleWorkers];
  Stopped stopped[kMaxStopped];
  pg_atomic_uint64 rounds;  // the last claim round's number, shared by the database's workers
};

struct SharedState {
  DatabasePool databases[config::kMaxDatabases];
  std::uint64_t generation;  // set when the shared memory is made: new after a crash restart
};

SharedState* shared = nullptr;  // null where the library was not preloaded
int my_slot = -1;   // in a RULE worker: its database's slot and its index
int my_index = -1;

// Made once by the postmaster (pg/shared_memory.hpp), again after a crash restart.
void init_shared_state(void* memory) {
  auto* state = static_cast<SharedState*>(memory);
  state->generation = static_cast<std::uint64_t>(GetCurrentTimestamp());
  for (auto& database : state->databases) {
    for (auto& worker : database.workers) {
      worker.pid = worker.project = worker.stop_sent = 0;
      worker.running = Attempt{};
    }
    for (auto& stopped : database.stopped) stopped = Stopped{0, 0, Attempt{}};
    SpinLockInit(&database.mutex);
    pg_atomic_init_u64(&database.rounds, 0);
  }
}

// Runs fn(pool) under the database's spinlock: fn must be a few plain instructions (no
// allocation, no Postgres call, nothing that throws).
template <typename Fn>
auto with_pool(int slot, Fn&& fn) {
  DatabasePool& pool = shared->databases[slot];
  SpinLockAcquire(&pool.mutex);
  auto result = fn(pool);
  SpinLockRelease(&pool.mutex);
  return result;
}

// The most workers one project may hold.
int project_cap() { return std::max(1, config::rule_workers - 1); }

int holding(const DatabasePool& pool, int project, int except) {
  int count = 0;
  for (int i = 0; i < config::kMaxRuleWorkers; ++i)
    if (i != except && pool.workers[i].pid != 0 && pool.workers[i].project == project) ++count;
  return count;
}

void leave(int, Datum) {
  with_pool(my_slot, [](DatabasePool& pool) {
    WorkerSlot& me = pool.workers[my_index];
    me.pid = 0;
    me.project = 0;
    me.running = Attempt{};
    return 0;
  });
}

}  // namespace

void request_shared_memory() {
  pg::request_shared_struct("pg_orchestration RULE workers", sizeof(SharedState), init_shared_state,
                            reinterpret_cast<void**>(&shared));
}

void join(int slot, int index) {
  if (!shared) return;
  my_slot = slot;
  my_index = index;
  with_pool(slot, [&](DatabasePool& pool) {
    WorkerSlot& me = pool.workers[index];
    me.pid = MyProcPid;
    me.project = 0;
    me.running = Attempt{};
    me.stop_sent = 0;
    return 0;
  });
  pg::guard([] { on_shmem_exit(leave, 0); });
}

AtCap projects_at_cap() {
  AtCap at_cap;
  ArrayLiteral literal;
  if (!shared || my_slot < 0) {
    at_cap.projects = literal.str();
    return at_cap;
  }
  int cap = project_cap();
  int projects[config::kMaxRuleWorkers];
  int workers[config::kMaxRuleWorkers];
  int count = with_pool(my_slot, [&](DatabasePool& pool) {
    int n = 0;
    for (int i = 0; i < config::kMaxRuleWorkers; ++i) {
      int project = pool.workers[i].project;
      if (i != my_index && pool.workers[i].pid != 0 && project != 0 && holding(pool, project, my_index) >= cap) {
        projects[n] = project;
        workers[n++] = i;
      }
    }
    return n;
  });
  for (int i = 0; i < count; ++i) literal.add(static_cast<std::int64_t>(projects[i]));
  at_cap.projects = literal.str();
  at_cap.workers.assign(workers, workers + count);
  return at_cap;
}

bool hold_project(int project) {
  if (!shared || my_slot < 0) return true;
  int cap = project_cap();
  return with_pool(my_slot, [&](DatabasePool& pool) {
    if (holding(pool, project, my_index) >= cap) return false;
    pool.workers[my_index].project = project;
    return true;
  });
}

void release_project() {
  if (!shared || my_slot < 0) return;
  with_pool(my_slot, [](DatabasePool& pool) {
    pool.workers[my_index].project = 0;
    return 0;
  });
}

void attempt_started(std::int64_t node, std::int64_t run, int timeout_seconds) {
  if (!shared || my_slot < 0) return;
  TimestampTz now = GetCurrentTimestamp();
  Attempt attempt{node, run, now,
                  TimestampTzPlusMilliseconds(now, static_cast<std::int64_t>(timeout_seconds) * 1000 + kGraceMs),
                  timeout_seconds};
  with_pool(my_slot, [&](DatabasePool& pool) {
    pool.workers[my_index].running = attempt;
    return 0;
  });
}

bool attempt_ended() {
  if (!shared || my_slot < 0) return true;
  return with_pool(my_slot, [](DatabasePool& pool) {
    WorkerSlot& me = pool.workers[my_index];
    me.running = Attempt{};
    return me.stop_sent != MyProcPid;
  });
}

void stop_overdue(int slot) {
  if (!shared) return;
  TimestampTz now = GetCurrentTimestamp();
  for (int index = 0; index < config::kMaxRuleWorkers; ++index) {
    Attempt overdue;
    bool full = false;
    int pid = with_pool(slot, [&](DatabasePool& pool) {
      WorkerSlot& worker = pool.workers[index];
      if (worker.pid == 0 || worker.running.node == 0 || worker.running.deadline > now || worker.stop_sent == worker.pid)
        return 0;
      for (auto& entry : pool.stopped) {
        if (entry.pid != 0) continue;
        // Marked before the signal, under the lock attempt_ended() takes: either the
        // attempt ended first (nothing to stop), or the worker learns it was stopped and
        // does not commit.
        entry = Stopped{worker.pid, index, worker.running};
        worker.stop_sent = worker.pid;
        overdue = worker.running;
        return worker.pid;
      }
      full = true;  // tried again once a stopped attempt is recorded
      return 0;
    });
    if (full)
      pg::guard([&] {
        ereport(WARNING, (errmsg("pg_orchestration scheduler: %d stopped RULE attempts wait to be recorded; RULE "
                                 "worker %d is stopped once one is",
                                 kMaxStopped, index)));
      });
    if (pid == 0) continue;
    kill(pid, SIGTERM);
    pg::guard([&] {
      ereport(LOG, (errmsg("pg_orchestration scheduler: stopped RULE worker %d (pid %d): node %lld ran past its "
                           "timeout of %d s",
                           index, pid, static_cast<long long>(overdue.node), overdue.timeout_seconds)));
    });
  }
}

std::vector<StoppedAttempt> stopped_attempts(int slot) {
  std::vector<StoppedAttempt> gone;
  if (!shared) return gone;
  for (int entry = 0; entry < kMaxStopped; ++entry) {
    Attempt stopped;
    bool exited = with_pool(slot, [&](DatabasePool& pool) {
      const Stopped& s = pool.stopped[entry];
      stopped = s.attempt;
      // A worker's slot is cleared (or taken by its next process) only after its
      // transaction was rolled back: the node is free.
      return s.pid != 0 && pool.workers[s.worker].pid != s.pid;
    });
    if (!exited) continue;
    const char* started = pg::guard([&] { return timestamptz_to_str(stopped.started_at); });
    gone.push_back({entry, stopped.node, stopped.run, started, stopped.timeout_seconds});
  }
  return gone;
}

void forget_stopped(int slot, int entry) {
  if (!shared) return;
  with_pool(slot, [&](DatabasePool& pool) {
    pool.stopped[entry] = Stopped{0, 0, Attempt{}};
    return 0;
  });
}

std::vector<std::int64_t> held_runs(int slot) {
  std::vector<std::int64_t> runs;
  if (!shared || slot < 0) return runs;
  std::int64_t held[kMaxStopped];
  int count = with_pool(slot, [&](DatabasePool& pool) {
    int n = 0;
    for (const auto& entry : pool.stopped)
      if (entry.pid != 0) held[n++] = entry.attempt.run;
    return n;
  });
  runs.assign(held, held + count);
  return runs;
}

long ms_to_next_deadline(int slot) {
  if (!shared) return -1;
  TimestampTz next = with_pool(slot, [](DatabasePool& pool) {
    TimestampTz earliest = 0;
    for (const auto& worker : pool.workers)
      if (worker.pid != 0 && worker.running.node != 0 && worker.stop_sent != worker.pid &&
          (earliest == 0 || worker.running.deadline < earliest))
        earliest = worker.running.deadline;
    return earliest;
  });
  if (next == 0) return -1;
  long ms = static_cast<long>((next - GetCurrentTimestamp()) / 1000);
  return std::max(0L, ms + 1);
}

std::int64_t next_round(int slot, std::int64_t& local) {
  if (!shared || slot < 0) return ++local;
  return static_cast<std::int64_t>(pg_atomic_add_fetch_u64(&shared->databases[slot].rounds, 1));
}

std::uint64_t generation() { return shared ? shared->generation : 0; }

bool enabled() { return shared != nullptr && config::rule_workers > 0; }

}  // namespace orch::scheduler::rule_pool
