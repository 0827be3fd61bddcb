// The draft 2020-12 metaschema and its vocabularies' metaschemas, built in: a schema may
// $ref "https://json-schema.org/draft/2020-12/schema" (to accept only valid schemas) or
// name it in "$schema", and nothing is ever fetched from the network.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace orch::schema {

// The built-in document with this URI (no fragment), or nullptr.
const nlohmann::json* builtin_document(const std::string& uri);

}  // namespace orch::schema
