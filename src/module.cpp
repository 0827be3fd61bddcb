// The shared library's entry point. Background workers are registered here when the
// library is in shared_preload_libraries; loaded any other way (CREATE EXTENSION in a
// server that does not preload it), the SQL API works and the workers are simply absent.
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

void _PG_init(void) {
  // Nothing here may start threads or initialise libcurl or nats.c: the postmaster forks
  // every backend from this state.
  MarkGUCPrefixReserved("orchestration");
}
