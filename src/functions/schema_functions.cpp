// SQL-callable JSON Schema validation, for users checking documents against a
// capability's contract (the engine uses the same validator, compiled once per capability).
#include "core/common/user_error.hpp"
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

// json_schema_documents_used(schema jsonb, documents jsonb, base_uri text, what text)
// returns jsonb: compiles the schema, with base_uri as its base URI, and these documents
// (URI -> schema, a project's registered schemas), and returns the URIs of those it uses,
// as a JSON array. An invalid schema, or a reference that resolves nowhere, is an error
// whose message starts with `what`.
ORCH_SQL_FUNCTION(orch_json_schema_documents_used) {
  nlohmann::json documents_json = orch::pg::arg_json(fcinfo, 1);
  std::string what = orch::pg::arg_text(fcinfo, 3);
  orch::schema::Documents documents;
  if (documents_json.is_object())
    for (auto it = documents_json.begin(); it != documents_json.end(); ++it) documents.emplace(it.key(), std::move(*it));
  orch::schema::CompileOptions options;
  options.documents = &documents;
  options.base_uri = orch::pg::arg_text(fcinfo, 2);
  std::shared_ptr<const orch::schema::Schema> schema;
  try {
    schema = orch::schema::Schema::compile(orch::pg::arg_json(fcinfo, 0), options);
  } catch (const orch::UserError& e) {
    throw orch::UserError(what + ": " + e.what(), e.detail(), e.hint(), e.sqlstate());
  }
  return orch::pg::json_datum(nlohmann::json(schema->documents_used()));
}
