#include "pg/extension_version.hpp"

#include "core/common/user_error.hpp"
#include "pg/boundary.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
}

namespace orch::pg {
namespace {

// pg_orchestration's row of pg_extension, as plain data (it is filled inside guard()).
struct ExtensionRow {
  Oid oid;
  char version[64];  // a longer one is cut, which still differs from the library's
};

ExtensionRow read_extension_row() {
  return guard([] {
    ExtensionRow row{InvalidOid, ""};
    Relation extensions = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
                CStringGetDatum("pg_orchestration"));
    SysScanDesc scan = systable_beginscan(extensions, ExtensionNameIndexId, true, nullptr, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    if (HeapTupleIsValid(tuple)) {
      row.oid = reinterpret_cast<Form_pg_extension>(GETSTRUCT(tuple))->oid;
      bool isnull = true;
      Datum version = heap_getattr(tuple, Anum_pg_extension_extversion, RelationGetDescr(extensions), &isnull);
      if (!isnull) text_to_cstring_buffer(DatumGetTextPP(version), row.version, sizeof row.version);
    }
    systable_endscan(scan);
    table_close(extensions, AccessShareLock);
    return row;
  });
}

// The transaction that last found the library's version: later calls in it skip the read
// (a function such as calling_role() runs once per row under row-level security).
LocalTransactionId current_in = InvalidLocalTransactionId;

}  // namespace

InstalledExtension installed_extension() {
  ExtensionRow row = read_extension_row();
  InstalledExtension installed;
  if (!OidIsValid(row.oid)) return installed;
  installed.version = row.version;
  installed.state = installed.version == kLibraryVersion ? InstalledExtension::current
                                                         : InstalledExtension::other_version;
  if (installed.state == InstalledExtension::current) current_in = MyProc->lxid;
  return installed;
}

void require_current_version() {
  if (current_in != InvalidLocalTransactionId && MyProc->lxid == current_in) return;
  InstalledExtension installed = installed_extension();
  if (installed.state != InstalledExtension::other_version) return;
  if (guard([] { return creating_extension && CurrentExtensionObject == get_extension_oid("pg_orchestration", true); }))
    return;
  throw UserError("pg_orchestration in this database is version " + installed.version +
                      ", but the library loaded is version " + kLibraryVersion,
                  "Its functions and workers wait until the database's objects are updated to the library's version.",
                  "Run ALTER EXTENSION pg_orchestration UPDATE in this database.",
                  sqlstate::object_not_in_prerequisite_state);
}

}  // namespace orch::pg
