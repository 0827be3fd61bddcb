// SQL-callable functions of the agent registry. The PL/pgSQL API (register_agent,
// update_agent, set_secret, ...) calls these to validate what users give it, so the
// rules live once, in the unit-tested core.
#include "core/registry/agent_spec.hpp"
#include "core/registry/names.hpp"
#include "pg/boundary.hpp"
#include "pg/jsonb.hpp"

// normalize_agent_spec(spec jsonb) returns jsonb
ORCH_SQL_FUNCTION(orch_normalize_agent_spec) {
  nlohmann::json spec = orch::pg::arg_json(fcinfo, 0);
  return orch::pg::json_datum(orch::registry::normalize_agent_spec(spec));
}

// validate_name(kind text, name text) returns text
ORCH_SQL_FUNCTION(orch_validate_name) {
  std::string kind = orch::pg::arg_text(fcinfo, 0);
  std::string name = orch::pg::arg_text(fcinfo, 1);
  orch::registry::require_valid_name(orch::registry::name_kind_from_string(kind), kind, name);
  return orch::pg::text_datum(name);
}
