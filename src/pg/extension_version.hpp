// The library against the extension's objects in a database: they must be one version.
//
// After a new version of the library is installed and the server restarted, each database
// keeps the objects of the version it had until ALTER EXTENSION pg_orchestration UPDATE
// runs there. The library's C functions and workers assume their own version's tables and
// SQL functions: run against another's, they would fail obscurely (a column missing, a
// function not found) or do the wrong thing. So a SQL-callable C function refuses to run
// with a clear error (call_from_postgres), and the workers wait (worker_main.cpp), until
// the update. The check reads pg_extension once per transaction (and again after an
// extension was created, updated or dropped in it, or a rollback to a savepoint).
#pragma once

#include <string>

namespace orch::pg {

// The control file's default_version, which this library was built with (Makefile).
extern const char* const kLibraryVersion;

struct InstalledExtension {
  enum State { missing, current, other_version };
  State state = missing;
  std::string version;  // pg_orchestration's extversion in this database ("" if missing)
};

// From _PG_init: forget a version found when CREATE, ALTER or DROP EXTENSION runs.
void watch_extension_changes();

// What this database has (in a transaction).
InstalledExtension installed_extension();

// Throws a UserError naming both versions and the fix, unless this database's
// pg_orchestration is the library's version. Lets through the extension's own install and
// update scripts (each step of an update runs at its own version; in a parallel worker of
// one, the extension's row was written by the transaction) and a database where it is
// missing (a function called while DROP EXTENSION runs).
void require_current_version();

}  // namespace orch::pg
