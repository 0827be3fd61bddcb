// orchestration.event_document(): the CloudEvents 1.0 document of every outbox event, built
// once per event in the hot paths (start_workflow, record_attempts, emit_events). In C,
// because the same document built in SQL (jsonb_build_object, ||, format, to_char,
// gen_random_uuid) cost about a seventh of a start_workflow call's instructions.
#include "pg/boundary.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
}

#include <array>
#include <cstring>
#include <string>

#include "core/events/cloud_event.hpp"
#include "pg/strong_random.hpp"

namespace {

// This database's name, read once: a database cannot be renamed while anyone is in it.
const std::string& database_name() {
  static const std::string name = [] {
    const char* found = orch::pg::guard([] { return get_database_name(MyDatabaseId); });
    return std::string(found ? found : "");
  }();
  return name;
}

// The pushes below run inside guard(): plain Postgres calls on plain data.
void push_string(JsonbParseState** state, JsonbIteratorToken token, const char* text, int length) {
  JsonbValue value;
  value.type = jbvString;
  value.val.string.val = const_cast<char*>(text);
  value.val.string.len = length;
  pushJsonbValue(state, token, &value);
}

void push_key(JsonbParseState** state, const char* key) {
  push_string(state, WJB_KEY, key, static_cast<int>(strlen(key)));
}

void push_null(JsonbParseState** state) {
  JsonbValue value;
  value.type = jbvNull;
  pushJsonbValue(state, WJB_VALUE, &value);
}

// A text argument's value, or JSON null for SQL NULL.
void push_text_arg(JsonbParseState** state, FunctionCallInfo fcinfo, int argno) {
  if (PG_ARGISNULL(argno)) return push_null(state);
  text* value = PG_GETARG_TEXT_PP(argno);
  push_string(state, WJB_VALUE, VARDATA_ANY(value), static_cast<int>(VARSIZE_ANY_EXHDR(value)));
}

void push_number(JsonbParseState** state, int64 number) {
  JsonbValue value;
  value.type = jbvNumeric;
  value.val.numeric = int64_to_numeric(number);
  pushJsonbValue(state, WJB_VALUE, &value);
}

}  // namespace

// event_document(project_id, type, subject, run_id, node_key, traceparent, data,
// occurred_at) returns jsonb: {specversion "1.0", id (a new UUID), source
// "/orchestration/<database>/<project_id>", type, subject, time (occurred_at, or now: UTC,
// microseconds), datacontenttype, data}; data is {project_id, run_id, traceparent,
// node_key (when not NULL)} with the keys of `data` (a JSON object, or NULL) added over
// them.
ORCH_SQL_FUNCTION(orch_event_document) {
  std::array<unsigned char, 16> random{};
  orch::pg::strong_random(random.data(), random.size());
  const std::string id = orch::events::uuid_text(random);

  struct Facts {
    bool project_null;
    int32 project_id;
    bool time_finite;
    TimestampTz time;
  };
  Facts facts = orch::pg::guard([&] {
    Facts f{PG_ARGISNULL(0), PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0), true, 0};
    f.time = PG_ARGISNULL(7) ? GetCurrentTimestamp() : PG_GETARG_TIMESTAMPTZ(7);
    f.time_finite = !TIMESTAMP_NOT_FINITE(f.time);
    return f;
  });
  const std::string source =
      "/orchestration/" + database_name() + "/" + (facts.project_null ? "" : std::to_string(facts.project_id));
  const std::string time = facts.time_finite ? orch::events::utc_time_text(facts.time) : "";

  return orch::pg::guard([&] {
    JsonbParseState* state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    push_key(&state, "specversion");
    push_string(&state, WJB_VALUE, "1.0", 3);
    push_key(&state, "id");
    push_string(&state, WJB_VALUE, id.c_str(), static_cast<int>(id.size()));
    push_key(&state, "source");
    push_string(&state, WJB_VALUE, source.c_str(), static_cast<int>(source.size()));
    push_key(&state, "type");
    push_text_arg(&state, fcinfo, 1);
    push_key(&state, "subject");
    push_text_arg(&state, fcinfo, 2);
    push_key(&state, "time");
    if (facts.time_finite) push_string(&state, WJB_VALUE, time.c_str(), static_cast<int>(time.size()));
    else push_null(&state);  // as to_char() of an infinite time
    push_key(&state, "datacontenttype");
    push_string(&state, WJB_VALUE, "application/json", 16);
    push_key(&state, "data");
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    push_key(&state, "project_id");
    if (facts.project_null) push_null(&state);
    else push_number(&state, facts.project_id);
    push_key(&state, "run_id");
    if (PG_ARGISNULL(3)) push_null(&state);
    else push_number(&state, PG_GETARG_INT64(3));
    push_key(&state, "traceparent");
    push_text_arg(&state, fcinfo, 5);
    if (!PG_ARGISNULL(4)) {
      push_key(&state, "node_key");
      push_text_arg(&state, fcinfo, 4);
    }
    // The event's own fields, over those above as || would put them: an object's last
    // value for a key is the one it keeps.
    if (!PG_ARGISNULL(6)) {
      Jsonb* data = PG_GETARG_JSONB_P(6);
      if (!JB_ROOT_IS_OBJECT(data))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("an event's data must be a JSON object, not %s",
                               JB_ROOT_IS_SCALAR(data) ? "a scalar" : "an array")));
      JsonbIterator* it = JsonbIteratorInit(&data->root);
      JsonbValue value;
      JsonbIteratorToken token;
      while ((token = JsonbIteratorNext(&it, &value, true)) != WJB_DONE)
        if (token == WJB_KEY || token == WJB_VALUE) pushJsonbValue(&state, token, &value);
    }
    pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
    JsonbValue* document = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
    return JsonbPGetDatum(JsonbValueToJsonb(document));
  });
}
