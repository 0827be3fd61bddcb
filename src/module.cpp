// The shared library's entry point. Background workers are registered here when the
// library is in shared_preload_libraries; loaded any other way (CREATE EXTENSION in a
// server that does not preload it), the SQL API works and the workers are simply absent.
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

#include <cstdio>

#include "config/gucs.hpp"
#include "workers/wakeup.hpp"

namespace {

// Two workers per database: the scheduler and the NATS relay (which idles while
// orchestration.nats_url is empty).
void register_workers() {
  std::vector<std::string> databases = orch::config::scheduler_databases();
  for (std::size_t slot = 0; slot < databases.size(); ++slot) {
    for (const char* kind : {"scheduler", "relay"}) {
      BackgroundWorker worker = {};
      worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
      worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
      // Seconds. After a crash the worker comes back and recovers; a database that does
      // not exist yet is retried at this pace.
      worker.bgw_restart_time = 5;
      std::snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_orchestration");
      std::snprintf(worker.bgw_function_name, BGW_MAXLEN, "orch_%s_main", kind);
      std::snprintf(worker.bgw_name, BGW_MAXLEN, "pg_orchestration %s %s", kind, databases[slot].c_str());
      std::snprintf(worker.bgw_type, BGW_MAXLEN, "pg_orchestration %s", kind);
      worker.bgw_main_arg = Int32GetDatum(static_cast<int32>(slot));
      RegisterBackgroundWorker(&worker);
    }
  }
}

}  // namespace

void _PG_init(void) {
  // Nothing here may start threads or initialise libcurl or nats.c: the postmaster forks
  // every backend from this state.
  orch::config::define_gucs();
  if (!process_shared_preload_libraries_in_progress) return;
  orch::workers::install_shared_memory_hooks();
  register_workers();
}
