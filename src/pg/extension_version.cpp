#include "pg/extension_version.hpp"

#include "core/common/user_error.hpp"
#include "pg/boundary.hpp"

extern "C" {
#include "access/genam.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
}

namespace orch::pg {

const char* const kLibraryVersion = ORCH_EXTENSION_VERSION;

namespace {

// pg_orchestration's row of pg_extension, as plain data (it is filled inside guard()).
struct ExtensionRow {
  Oid oid;
  char version[64];  // a longer one is cut, which still differs from the library's
  bool written_now;  // by this transaction (CREATE or ALTER EXTENSION in it)
};

ExtensionRow read_extension_row() {
  return guard([] {
    ExtensionRow row{InvalidOid, "", false};
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
      row.written_now = TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tuple->t_data));
    }
    systable_endscan(scan);
    table_close(extensions, AccessShareLock);
    return row;
  });
}

// Where the library's version was last found: later calls there skip the read (a
// function such as calling_role() runs once per row under row-level security). It is
// forgotten when CREATE, ALTER or DROP EXTENSION runs (on_extension_change), and a
// rollback to a savepoint, which may undo one, goes on in a new subtransaction.
struct Place {
  LocalTransactionId transaction = InvalidLocalTransactionId;
  SubTransactionId subtransaction = InvalidSubTransactionId;
  bool operator==(const Place& other) const {
    return transaction == other.transaction && subtransaction == other.subtransaction;
  }
};
Place found_current;

Place here() { return guard([] { return Place{MyProc->lxid, GetCurrentSubTransactionId()}; }); }

object_access_hook_type previous_object_access_hook = nullptr;

void on_extension_change(ObjectAccessType access, Oid class_id, Oid object_id, int sub_id, void* arg) {
  if (class_id == ExtensionRelationId) found_current = Place{};
  if (previous_object_access_hook) previous_object_access_hook(access, class_id, object_id, sub_id, arg);
}

InstalledExtension::State state_of(const ExtensionRow& row) {
  if (!OidIsValid(row.oid)) return InstalledExtension::missing;
  return std::string(row.version) == kLibraryVersion ? InstalledExtension::current : InstalledExtension::other_version;
}

}  // namespace

void watch_extension_changes() {
  previous_object_access_hook = object_access_hook;
  object_access_hook = on_extension_change;
}

InstalledExtension installed_extension() {
  ExtensionRow row = read_extension_row();
  InstalledExtension installed{state_of(row), row.version};
  if (installed.state == InstalledExtension::current) found_current = here();
  return installed;
}

void require_current_version() {
  Place now = here();
  if (now == found_current) return;
  ExtensionRow row = read_extension_row();
  InstalledExtension::State state = state_of(row);
  if (state == InstalledExtension::current) found_current = now;
  if (state != InstalledExtension::other_version) return;
  // The extension's own scripts, at whatever version each step installs.
  if (guard([&] { return creating_extension ? CurrentExtensionObject == row.oid : IsParallelWorker() && row.written_now; }))
    return;
  throw UserError(std::string("pg_orchestration in this database is version ") + row.version +
                      ", but the library loaded is version " + kLibraryVersion,
                  "Its functions and workers wait until the database's objects are updated to the library's version.",
                  std::string("Run ALTER EXTENSION pg_orchestration UPDATE in this database (on the primary, if this "
                              "is a standby); if the database's version is the newer, install the library of version ") +
                      row.version + ".",
                  sqlstate::object_not_in_prerequisite_state);
}

}  // namespace orch::pg
