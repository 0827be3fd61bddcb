#include "pg/jsonb.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/jsonb.h"
}

#include "core/common/json_limits.hpp"
#include "core/common/user_error.hpp"

namespace orch::pg {

nlohmann::json arg_json(FunctionCallInfo fcinfo, int argno) {
  char* chars = guard([&] {
    Jsonb* jsonb = PG_GETARG_JSONB_P(argno);
    return JsonbToCString(nullptr, &jsonb->root, VARSIZE(jsonb));
  });
  try {
    // jsonb nests as deep as the server's stack allows; the core's recursion does not.
    return parse_json_limited(chars);
  } catch (const nlohmann::json::out_of_range&) {
    // jsonb numbers have no range limit; a double does (1e400 is valid jsonb).
    throw UserError("a JSON number is too large", {},
                    "Numbers must fit a double precision value (at most about 1.8e308).",
                    sqlstate::program_limit_exceeded);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(std::string("JSON value cannot be processed: ") + e.what());
  }
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
