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
#include "pg/extension_version.hpp"
#include "scheduler/rule_pool.hpp"
#include "workers/wakeup.hpp"
#include "workers/worker_main.hpp"

namespace {

void register_worker(const char* kind, const char* function, const std::string& database, int slot, int index,
                     int restart_seconds) {
  BackgroundWorker worker = {};
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
  worker.bgw_restart_time = restart_seconds;
  std::snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_orchestration");
  std::snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
  if (std::string(kind) == "rule worker")
    std::snprintf(worker.bgw_name, BGW_MAXLEN, "pg_orchestration %s %d %s", kind, index, database.c_str());
  else
    std::snprintf(worker.bgw_name, BGW_MAXLEN, "pg_orchestration %s %s", kind, database.c_str());
  std::snprintf(worker.bgw_type, BGW_MAXLEN, "pg_orchestration %s", kind);
  worker.bgw_main_arg = orch::workers::worker_arg(slot, index);
  RegisterBackgroundWorker(&worker);
}

// Per database: the scheduler, the NATS relay (which idles while orchestration.nats_url
// is empty), the metrics endpoint (idle while orchestration.metrics_listen is empty) and
// orchestration.rule_workers RULE workers.
void register_workers() {
  std::vector<std::string> databases = orch::config::scheduler_databases();
  for (std::size_t i = 0; i < databases.size(); ++i) {
    int slot = static_cast<int>(i);
    // Seconds. After a crash the worker comes back and recovers; a database that does
    // not exist yet is retried at this pace.
    register_worker("scheduler", "orch_scheduler_main", databases[i], slot, 0, 5);
    register_worker("relay", "orch_relay_main", databases[i], slot, 0, 5);
    // Idles while orchestration.metrics_listen is empty.
    register_worker("metrics", "orch_metrics_main", databases[i], slot, 0, 5);
    // A RULE worker the scheduler stopped comes back after a second.
    for (int index = 0; index < orch::config::rule_workers; ++index)
      register_worker("rule worker", "orch_rule_worker_main", databases[i], slot, index, 1);
  }
}

}  // namespace

void _PG_init(void) {
  // Nothing here may start threads or initialise libcurl or nats.c: the postmaster forks
  // every backend from this state.
  orch::config::define_gucs();
  orch::pg::watch_extension_changes();
  if (!process_shared_preload_libraries_in_progress) return;
  orch::workers::request_shared_memory();
  orch::scheduler::rule_pool::request_shared_memory();
  register_workers();
}
