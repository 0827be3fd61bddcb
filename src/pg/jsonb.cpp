#include "pg/jsonb.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/jsonb.h"
}

#include "core/common/json_limits.hpp"

namespace orch::pg {

nlohmann::json arg_json(FunctionCallInfo fcinfo, int argno) {
  char* chars = guard([&] {
    Jsonb* jsonb = PG_GETARG_JSONB_P(argno);
    return JsonbToCString(nullptr, &jsonb->root, VARSIZE(jsonb));
  });
  // jsonb nests as deep as the server's stack allows, and its numbers have no range
  // limit; the core's recursion and doubles do: parse_json_limited says which.
  return parse_json_limited(chars);
}

std::string arg_text(FunctionCallInfo fcinfo, int argno) {
  char* chars = guard([&] { return text_to_cstring(PG_GETARG_TEXT_PP(argno)); });
  return chars;
}

Datum json_datum(const nlohmann::json& value) {
  std::string text = value.dump();
  return guard([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(text.c_str())); });
}

Datum text_datum(const std::string& value) {
  return guard([&] {
    return PointerGetDatum(cstring_to_text_with_len(value.data(), static_cast<int>(value.size())));
  });
}

}  // namespace orch::pg
