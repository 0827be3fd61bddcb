// jsonb <-> nlohmann::json, through jsonb's text form. Every Postgres call is guarded,
// so callers need no PG_TRY of their own.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "pg/boundary.hpp"

namespace orch::pg {

nlohmann::json arg_json(FunctionCallInfo fcinfo, int argno);
std::string arg_text(FunctionCallInfo fcinfo, int argno);

Datum json_datum(const nlohmann::json& value);
Datum text_datum(const std::string& value);

}  // namespace orch::pg
