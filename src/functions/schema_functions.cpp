// SQL-callable JSON Schema validation, for users checking documents against a
// capability's contract (the engine uses the same validator, compiled once per capability).
#include "core/schema/json_schema.hpp"
#include "pg/boundary.hpp"
#include "pg/jsonb.hpp"

// json_schema_valid(schema jsonb, instance jsonb) returns boolean
ORCH_SQL_FUNCTION(orch_json_schema_valid) {
  auto schema = orch::schema::Schema::compile(orch::pg::arg_json(fcinfo, 0));
  bool valid = schema->is_valid(orch::pg::arg_json(fcinfo, 1));
  return BoolGetDatum(valid);
}

// json_schema_violations(schema jsonb, instance jsonb) returns jsonb: [{path, message}]
ORCH_SQL_FUNCTION(orch_json_schema_violations) {
  auto schema = orch::schema::Schema::compile(orch::pg::arg_json(fcinfo, 0));
  nlohmann::json list = nlohmann::json::array();
  for (const auto& violation : schema->validate(orch::pg::arg_json(fcinfo, 1), 1000))
    list.push_back({{"path", violation.path}, {"message", violation.message}});
  return orch::pg::json_datum(list);
}
