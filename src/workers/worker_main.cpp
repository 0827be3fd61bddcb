#include "workers/worker_main.hpp"

extern "C" {
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
}

#include <algorithm>
#include <vector>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "config/gucs.hpp"
#include "pg/extension_version.hpp"
#include "pg/transaction.hpp"

namespace orch::workers {
namespace {

// The wait set of a worker that waits on its latch alone (RULE workers), made once and
// kept, as WaitLatch keeps its own: making one costs four system calls and freeing it one,
// the last of them between a wake-up and the pass it is for. A set with descriptors is
// made for each sleep: a descriptor closed and reopened under the same number (the NATS
// link's pipe after a reconnect) would silently be missing from a kept one.
WaitEventSet* latch_only_set = nullptr;

WaitEventSet* make_wait_set(const int* fds, std::size_t count) {
  WaitEventSet* set = CreateWaitEventSet(TopMemoryContext, 2 + static_cast<int>(count));
  AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
  AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
  for (std::size_t i = 0; i < count; ++i)
    if (fds[i] != PGINVALID_SOCKET) AddWaitEventToSet(set, WL_SOCKET_READABLE, fds[i], nullptr, nullptr);
  return set;
}

// Sleeps until the latch is set, one of `fds` becomes readable, or sleep_ms pass (as
// WaitLatchOrSocket does, for any number of descriptors); exits if the postmaster dies.
void sleep_on(const std::vector<int>& fds, long sleep_ms) {
  bool latch_only = std::all_of(fds.begin(), fds.end(), [](int fd) { return fd == PGINVALID_SOCKET; });
  if (latch_only && !latch_only_set) latch_only_set = make_wait_set(nullptr, 0);
  WaitEventSet* set = latch_only ? latch_only_set : make_wait_set(fds.data(), fds.size());
  WaitEvent event;
  set_sleeping(true);
  (void)WaitEventSetWait(set, sleep_ms, &event, 1, PG_WAIT_EXTENSION);
  set_sleeping(false);
  if (!latch_only) FreeWaitEventSet(set);
  ResetLatch(MyLatch);
}

void loop(WorkerLoop& worker_loop, int slot, int index, Worker worker, const char* name, const std::string& database) {
  MemoryContext loop_context = pg::guard([] {
    return AllocSetContextCreate(TopMemoryContext, "pg_orchestration worker turn", ALLOCSET_DEFAULT_SIZES);
  });
  pg::guard([&] {
    pgstat_report_appname(name);
    register_worker(worker, slot, index);
    ereport(LOG, (errmsg("%s started in database \"%s\"", name, database.c_str())));
  });

  for (;;) {
    bool reloaded = pg::guard([] {
      // A cancel (pg_cancel_backend, a statement timer that fired late) is for the
      // statement it interrupted; between turns there is none, so it must not end the
      // worker here, as it would: an idle backend ignores one the same way.
      QueryCancelPending = false;
      CHECK_FOR_INTERRUPTS();  // a pending SIGTERM ends the worker here
      if (!ConfigReloadPending) return false;
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
      return true;
    });
    if (reloaded) worker_loop.reloaded();
    MemoryContext previous = MemoryContextSwitchTo(loop_context);
    long sleep_ms = worker_loop.run_once();
    MemoryContextSwitchTo(previous);
    pg::guard([&] { MemoryContextReset(loop_context); });
    if (sleep_ms > 0) {
      std::vector<int> fds = worker_loop.wake_fds();
      pg::guard([&] { sleep_on(fds, sleep_ms); });
    }
  }
}

// A worker keeps the memory it frees for its next turn. glibc's malloc gives memory at the
// top of its heap back to the kernel once 128 KiB are free there, and maps blocks of
// 128 KiB and up on their own, unmapping them when freed (both limits then move with what
// the process frees). A worker's turn frees what the next turn allocates again (an
// executor's memory contexts, the 27 KiB state of each B-tree scan), so each turn touched
// fresh pages again: a page fault each, which costs about 10 µs on the virtual machines
// this is measured on. On chain-1000, after a first chain, the RULE workers took 420-7,200
// faults a chain and 370-600 µs of CPU a node; with limits of 4 MiB and 16 MiB, 190-750
// faults and 350-460 µs (three alternations, README Performance). Those limits kept what a
// 1 MB output needed: a RULE worker stayed at 49 MiB. With these, blocks of 1 MiB and
// more (an output, its copies) are mapped on their own and go back when freed, at most
// 4 MiB free stay at the top of the heap, and the same worker stays at 12 MiB, while a
// chain's faults after its first stay in the hundreds.
void keep_freed_memory() {
#ifdef __GLIBC__
  (void)mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
  (void)mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
#endif
}

}  // namespace

Datum worker_arg(int slot, int index) { return Int32GetDatum(index * config::kMaxDatabases + slot); }

void run_worker(Datum arg, Worker worker, const char* name, MakeLoop make_loop) {
  int slot = DatumGetInt32(arg) % config::kMaxDatabases;
  int index = DatumGetInt32(arg) / config::kMaxDatabases;
  keep_freed_memory();
  pqsignal(SIGTERM, die);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();

  std::vector<std::string> databases = config::scheduler_databases();
  if (slot >= static_cast<int>(databases.size())) proc_exit(0);
  std::string database = databases[static_cast<std::size_t>(slot)];
  BackgroundWorkerInitializeConnection(database.c_str(), nullptr, 0);
  // The worker connects as a superuser: none of its statements may resolve a function or
  // an operator through a schema someone else can write to ("$user", public).
  SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
  // The workers never wait on a lock for long (they pass over rows others hold); should a
  // statement wait all the same, on a lock a tenant can hold for as long as it likes, the
  // turn fails after this and is tried again, instead of stopping the worker (and the
  // scheduler's watchdog) for good. RULE functions get no lock timeout (rule_executor.cpp).
  SetConfigOption("lock_timeout", "10s", PGC_SUSET, PGC_S_SESSION);

  try {
    std::unique_ptr<WorkerLoop> worker_loop = make_loop(database, slot, index);
    loop(*worker_loop, slot, index, worker, name, database);
  } catch (const std::exception& e) {
    pg::log_worker_error(name, e);
  }
  proc_exit(1);
}

// A catalog lookup, not a query: every turn of every worker asks (a query cost 20 µs).
bool extension_ready() {
  // The version this worker last said it waits for the update from ("": none), so that it
  // says so once, not every turn.
  static std::string waiting_for;
  pg::InstalledExtension installed = pg::installed_extension();
  const char* name = MyBgworkerEntry ? MyBgworkerEntry->bgw_type : "pg_orchestration";
  if (installed.state == pg::InstalledExtension::other_version && installed.version != waiting_for) {
    waiting_for = installed.version;
    pg::guard([&] {
      ereport(LOG, (errmsg("%s: pg_orchestration in this database is version %s, but the library loaded is "
                           "version %s; waiting for ALTER EXTENSION pg_orchestration UPDATE",
                           name, installed.version.c_str(), pg::kLibraryVersion)));
    });
  } else if (installed.state == pg::InstalledExtension::current && !waiting_for.empty()) {
    waiting_for.clear();
    pg::guard([&] {
      ereport(LOG, (errmsg("%s: pg_orchestration in this database is version %s now; going on", name,
                           pg::kLibraryVersion)));
    });
  }
  return installed.state == pg::InstalledExtension::current;
}

}  // namespace orch::workers
