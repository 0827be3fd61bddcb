// start_workflow_trigger(): the table trigger that starts a workflow in the writer's
// transaction. It runs as whoever writes the row, like any trigger function: turning the
// row into JSON may call code of the table owner's choosing (a cast to json of a type of
// theirs), which must never run with the extension owner's privileges. Only the start
// itself, start_run_from_trigger (SECURITY DEFINER), runs as the extension owner; it is
// executable by nobody, and called here through fmgr, which checks no privilege.
#include "core/common/user_error.hpp"
#include "pg/boundary.hpp"

extern "C" {
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "nodes/primnodes.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
}

#include <string>

namespace {

constexpr const char* kHint =
    "CREATE TRIGGER ... AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION "
    "orchestration.start_workflow_trigger('<project_id>', '<workflow>' [, '<key>=<column>' | '<column>' ...]);";

// The row as jsonb, computed as the writer (the current user), through to_jsonb(record).
Datum row_jsonb(HeapTuple tuple, TupleDesc descriptor) {
  Datum row = heap_copy_tuple_as_datum(tuple, descriptor);
  // to_jsonb is polymorphic: it reads its argument's type from the call expression.
  FmgrInfo flinfo;
  fmgr_info(F_TO_JSONB, &flinfo);
  Param* arg = makeNode(Param);
  arg->paramkind = PARAM_EXTERN;
  arg->paramtype = descriptor->tdtypeid;
  arg->paramtypmod = -1;
  arg->location = -1;
  FuncExpr* call = makeNode(FuncExpr);
  call->funcid = F_TO_JSONB;
  call->funcresulttype = JSONBOID;
  call->args = list_make1(arg);
  call->location = -1;
  fmgr_info_set_expr(reinterpret_cast<Node*>(call), &flinfo);
  return FunctionCall1(&flinfo, row);
}

}  // namespace

ORCH_SQL_FUNCTION(orch_start_workflow_trigger) {
  bool as_trigger = CALLED_AS_TRIGGER(fcinfo);
  TriggerData* trigger = as_trigger ? reinterpret_cast<TriggerData*>(fcinfo->context) : nullptr;
  if (!trigger || !TRIGGER_FIRED_FOR_ROW(trigger->tg_event) || trigger->tg_trigger->tgnargs < 2)
    throw orch::UserError("orchestration.start_workflow_trigger must be a FOR EACH ROW trigger with at least two arguments",
                          "", kHint);
  TriggerEvent event = trigger->tg_event;
  const char* operation = TRIGGER_FIRED_BY_INSERT(event)   ? "INSERT"
                          : TRIGGER_FIRED_BY_UPDATE(event) ? "UPDATE"
                          : TRIGGER_FIRED_BY_DELETE(event) ? "DELETE"
                                                           : nullptr;
  if (!operation)
    throw orch::UserError("orchestration.start_workflow_trigger fires on INSERT, UPDATE or DELETE only",
                          "", kHint);
  return orch::pg::guard([&] {
    Relation relation = trigger->tg_relation;
    TupleDesc descriptor = RelationGetDescr(relation);
    HeapTuple new_row = TRIGGER_FIRED_BY_INSERT(event)   ? trigger->tg_trigtuple
                        : TRIGGER_FIRED_BY_UPDATE(event) ? trigger->tg_newtuple
                                                         : nullptr;
    HeapTuple old_row = TRIGGER_FIRED_BY_INSERT(event) ? nullptr : trigger->tg_trigtuple;
    Datum new_json = new_row ? row_jsonb(new_row, descriptor) : (Datum)0;
    Datum old_json = old_row ? row_jsonb(old_row, descriptor) : (Datum)0;

    // Looked up by schema and argument type OIDs: type names would be resolved through
    // the writer's search_path, where a temporary type "jsonb" comes first.
    Oid argument_types[] = {OIDOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, TEXTARRAYOID};
    Oid start = LookupFuncName(list_make2(makeString(pstrdup("orchestration")), makeString(pstrdup("start_run_from_trigger"))),
                               7, argument_types, true);
    if (start == InvalidOid) elog(ERROR, "orchestration.start_run_from_trigger is missing; reinstall the extension");
    FmgrInfo flinfo;
    fmgr_info(start, &flinfo);
    // The arguments after the workflow choose the context's keys (start_run_from_trigger).
    int mapped = trigger->tg_trigger->tgnargs - 2;
    Datum* columns = static_cast<Datum*>(palloc(sizeof(Datum) * (mapped > 0 ? mapped : 1)));
    for (int i = 0; i < mapped; ++i) columns[i] = CStringGetTextDatum(trigger->tg_trigger->tgargs[i + 2]);
    ArrayType* mapping = construct_array(columns, mapped, TEXTOID, -1, false, TYPALIGN_INT);
    LOCAL_FCINFO(call, 7);
    InitFunctionCallInfoData(*call, &flinfo, 7, InvalidOid, nullptr, nullptr);
    call->args[0] = {ObjectIdGetDatum(RelationGetRelid(relation)), false};
    call->args[1] = {CStringGetTextDatum(trigger->tg_trigger->tgargs[0]), false};
    call->args[2] = {CStringGetTextDatum(trigger->tg_trigger->tgargs[1]), false};
    call->args[3] = {CStringGetTextDatum(operation), false};
    call->args[4] = {new_json, new_row == nullptr};
    call->args[5] = {old_json, old_row == nullptr};
    call->args[6] = {PointerGetDatum(mapping), false};
    FunctionCallInvoke(call);
    return PointerGetDatum(new_row ? new_row : old_row);  // what a BEFORE trigger must return
  });
}
