// References ($id, $anchor, $ref to other documents, $dynamicRef), the unevaluated
// keywords and $vocabulary: what JSON-Schema-Test-Suite checks (json_schema_suite_test.cpp)
// plus what it does not: messages through references, the documents a schema uses,
// recursion through $ref cycles at depth, and hostile schemas.
#include <gtest/gtest.h>

#include "core/common/json_limits.hpp"
#include "core/common/user_error.hpp"
#include "core/schema/json_schema.hpp"

using nlohmann::json;
using orch::UserError;
using orch::schema::CompileOptions;
using orch::schema::Documents;
using orch::schema::Schema;

namespace {

std::string violations(const Schema& schema, const json& instance) {
  auto found = schema.validate(instance);
  EXPECT_EQ(found.empty(), schema.is_valid(instance)) << instance;
  return orch::schema::describe(found, 10);
}

std::shared_ptr<const Schema> compile(const char* text, const Documents* documents = nullptr) {
  CompileOptions options;
  options.documents = documents;
  return Schema::compile(json::parse(text), options);
}

std::string compile_error(const char* text, const Documents* documents = nullptr) {
  try {
    compile(text, documents);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

const Documents kShared = {
    {"https://example.com/address", json::parse(R"({
       "type": "object", "required": ["street", "city"],
       "properties": {"street": {"type": "string"}, "city": {"type": "string"}, "zip": {"$ref": "#zip"}},
       "$defs": {"zip": {"$anchor": "zip", "type": "string", "pattern": "^[0-9]{5}$"}}})")},
    {"https://example.com/person", json::parse(R"({
       "$id": "https://example.com/person",
       "properties": {"name": {"type": "string"}, "home": {"$ref": "address"}}})")},
    {"https://example.com/unused", json::parse(R"({"type": "null"})")},
};

}  // namespace

TEST(JsonSchemaReferences, MessagesNameTheReferenceAndThePathInTheInstance) {
  auto schema = compile(R"({"type": "object", "properties": {"items": {"type": "array",
      "items": {"$ref": "#/$defs/address"}}},
    "$defs": {"address": {"type": "object", "required": ["city"],
      "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}}})");
  EXPECT_EQ(violations(*schema, json::parse(R"({"items": [{"zip": "1"}]})")),
            R"(/items/0: does not match $defs/address: is missing the required property "city")");
  // Deeper than where the reference applies: the path says where, the message which schema.
  EXPECT_EQ(violations(*schema, json::parse(R"({"items": [{"city": "x"}, {"city": 5}]})")),
            R"(/items/1/city: 5 is not of type "string" (in $defs/address))");
  EXPECT_EQ(violations(*schema, json::parse(R"({"items": [{"city": "x"}]})")), "");
}

TEST(JsonSchemaReferences, RegisteredDocumentsAnchorsAndRelativeIds) {
  auto schema = compile(R"({"$ref": "https://example.com/person"})", &kShared);
  EXPECT_EQ(schema->documents_used(), (std::vector<std::string>{"https://example.com/address", "https://example.com/person"}));
  EXPECT_EQ(violations(*schema, json::parse(R"({"name": "a", "home": {"street": "s", "city": "c", "zip": "12345"}})")), "");
  EXPECT_EQ(violations(*schema, json::parse(R"({"home": {"street": "s", "zip": "1"}})")),
            R"(/home: does not match address: is missing the required property "city"; )"
            R"(/home/zip: does not match #zip: "1" does not match the pattern "^[0-9]{5}$")");
  EXPECT_EQ(compile_error(R"({"$ref": "https://example.com/other"})", &kShared),
            R"(invalid JSON Schema at /$ref: $ref "https://example.com/other" does not resolve: no schema is known as )"
            R"("https://example.com/other")");
  EXPECT_EQ(compile_error(R"({"$ref": "https://example.com/address#street"})", &kShared),
            R"(invalid JSON Schema at /$ref: $ref "https://example.com/address#street" does not resolve: no $anchor or )"
            R"($dynamicAnchor "street" in "https://example.com/address")");
  // The metaschema is built in: a schema can accept only schemas.
  auto meta = compile(R"({"$ref": "https://json-schema.org/draft/2020-12/schema"})");
  EXPECT_TRUE(meta->documents_used().empty());
  EXPECT_TRUE(meta->is_valid(json::parse(R"({"type": "string", "minLength": 1})")));
  EXPECT_FALSE(meta->is_valid(json::parse(R"({"minLength": -1})")));
  EXPECT_FALSE(meta->is_valid(json::parse(R"({"$defs": {"a": {"type": "text"}}})")));
}

TEST(JsonSchemaReferences, UnknownDocumentsAreAcceptedOnlyWhenAsked) {
  CompileOptions lenient;
  lenient.unknown_documents_accepted = true;
  auto schema = Schema::compile(json::parse(R"({"properties": {"a": {"$ref": "https://example.com/x#/$defs/y"}}})"), lenient);
  EXPECT_TRUE(schema->is_valid(json::parse(R"({"a": 1})")));
  // A missing local target is still an error: only other documents wait for the check
  // with the registered schemas.
  EXPECT_THROW(Schema::compile(json::parse(R"({"$ref": "#/$defs/y"})"), lenient), UserError);
}

// A schema that refers to itself, through a $ref cycle (node -> children -> items -> node)
// and across documents, validates an instance as deep as any instance may be.
TEST(JsonSchemaReferences, RecursionThroughRefCyclesAtTheDepthLimit) {
  Documents tree = {{"https://example.com/tree", json::parse(R"({
      "$id": "https://example.com/tree", "$anchor": "node", "type": "object", "required": ["value"],
      "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "forest#/$defs/tree"}}}})")},
                    {"https://example.com/forest", json::parse(R"({"$defs": {"tree": {"$ref": "tree#node"}}})")}};
  auto schema = compile(R"({"$ref": "https://example.com/tree"})", &tree);
  // Two JSON levels a tree level ({"children": [...]}): 255 tree levels is 511 levels.
  auto deep = [](int levels, json node) {
    for (int i = 0; i < levels; ++i) {  // moved, not copied: copies recurse
      json parent = {{"value", i}, {"children", json::array()}};
      parent["children"].push_back(std::move(node));
      node = std::move(parent);
    }
    return node;
  };
  json leaf = {{"value", 0}};
  EXPECT_EQ(orch::json_depth(deep(255, leaf)), 511u);
  EXPECT_EQ(violations(*schema, deep(255, leaf)), "");
  json bad = deep(255, json{{"value", "x"}});
  std::string message = violations(*schema, bad);
  EXPECT_EQ(message.substr(message.size() - 51), R"(/value: "x" is not of type "integer" (in tree#node))") << message;
  // Deeper than an instance may be: an error, not a crash.
  EXPECT_THROW(schema->validate(deep(300, leaf)), UserError);
  EXPECT_THROW(schema->is_valid(deep(100000, leaf)), UserError);
}

TEST(JsonSchemaReferences, DynamicRefsResolveInTheDynamicScope) {
  // The usual extensible tree: "strict" narrows every level of the generic one.
  Documents documents = {{"https://example.com/tree", json::parse(R"({
      "$id": "https://example.com/tree", "$dynamicAnchor": "node", "type": "object",
      "properties": {"data": true, "children": {"type": "array", "items": {"$dynamicRef": "#node"}}}})")}};
  auto strict = compile(R"({"$id": "https://example.com/strict", "$dynamicAnchor": "node",
      "$ref": "tree", "unevaluatedProperties": false})", &documents);
  EXPECT_EQ(violations(*strict, json::parse(R"({"children": [{"data": 1}]})")), "");
  // "children" failed, so what it evaluated does not count either (annotations of a
  // subschema that fails are dropped): both are reported.
  EXPECT_EQ(violations(*strict, json::parse(R"({"children": [{"daat": 1}]})")),
            R"(/children/0: does not match #node: has the property "daat", which is not allowed (unevaluatedProperties); )"
            R"((root): has the property "children", which is not allowed (unevaluatedProperties))");
  auto loose = compile(R"({"$ref": "https://example.com/tree"})", &documents);
  EXPECT_TRUE(loose->is_valid(json::parse(R"({"children": [{"daat": 1}]})")));
}

TEST(JsonSchemaReferences, UnevaluatedKeywordsSeeThroughApplicators) {
  auto schema = compile(R"({"allOf": [{"properties": {"a": true}}], "anyOf": [{"properties": {"b": true}}, true],
      "if": {"required": ["kind"], "properties": {"kind": {"const": "c"}}}, "then": {"properties": {"c": true}},
      "unevaluatedProperties": false})");
  EXPECT_EQ(violations(*schema, json::parse(R"({"a": 1, "b": 2})")), "");
  EXPECT_EQ(violations(*schema, json::parse(R"({"kind": "c", "c": 1})")), "");
  EXPECT_EQ(violations(*schema, json::parse(R"({"a": 1, "c": 1})")),
            R"((root): has the property "c", which is not allowed (unevaluatedProperties))");
  auto items = compile(R"({"prefixItems": [{"type": "string"}], "contains": {"type": "integer"},
      "unevaluatedItems": {"type": "boolean"}})");
  EXPECT_EQ(violations(*items, json::parse(R"(["a", 1, true, 2])")), "");
  EXPECT_EQ(violations(*items, json::parse(R"(["a", 1, null])")), R"(/2: null is not of type "boolean")");
}

TEST(JsonSchemaReferences, Vocabularies) {
  Documents documents = {{"https://example.com/meta/no-validation", json::parse(R"({
      "$id": "https://example.com/meta/no-validation",
      "$vocabulary": {"https://json-schema.org/draft/2020-12/vocab/core": true,
                      "https://json-schema.org/draft/2020-12/vocab/applicator": true}})")},
                         {"https://example.com/meta/custom", json::parse(R"({
      "$vocabulary": {"https://json-schema.org/draft/2020-12/vocab/core": true,
                      "https://example.com/vocab/custom": true}})")}};
  auto schema = compile(R"({"$schema": "https://example.com/meta/no-validation",
      "properties": {"bad": false, "n": {"minimum": 10}}})", &documents);
  EXPECT_TRUE(schema->is_valid(json::parse(R"({"n": 1})")));
  EXPECT_FALSE(schema->is_valid(json::parse(R"({"bad": 1})")));
  EXPECT_EQ(compile_error(R"({"$schema": "https://example.com/meta/custom"})", &documents),
            R"(invalid JSON Schema: its metaschema "https://example.com/meta/custom" requires the vocabulary )"
            R"("https://example.com/vocab/custom", which is not supported)");
  // An older draft's metaschema is not refused: its schemas are read as 2020-12.
  EXPECT_TRUE(compile(R"({"$schema": "http://json-schema.org/draft-07/schema#", "minimum": 1})")->is_valid(2));
}

TEST(JsonSchemaReferences, HostileSchemasAreRefusedOrBounded) {
  // A $dynamicRef that resolves to itself applies itself to the same value for ever.
  EXPECT_NE(compile_error(R"({"$dynamicAnchor": "a", "$dynamicRef": "#a"})").find("$ref loop"), std::string::npos);
  // A loop only the dynamic scope makes: stopped by the depth limit, not the stack.
  Documents documents = {{"https://example.com/a", json::parse(R"({"$dynamicAnchor": "x", "$ref": "b"})")},
                         {"https://example.com/b", json::parse(R"({"$dynamicAnchor": "x", "not": {"$dynamicRef": "inner#x"},
                            "$defs": {"inner": {"$id": "inner", "$dynamicAnchor": "x", "type": "integer"}}})")}};
  auto looping = compile(R"({"$ref": "https://example.com/a"})", &documents);
  EXPECT_THROW(looping->validate(1), UserError);
  // Long identifiers are refused, not multiplied into gigabytes of URIs.
  json ids = {{"$id", "https://example.com/" + std::string(3000, 'a')}};
  EXPECT_THROW(Schema::compile(ids), UserError);
  json many = {{"$id", "https://example.com/" + std::string(2000, 'a') + "/"}, {"$defs", json::object()}};
  for (int i = 0; i < 10000; ++i) many["$defs"]["d" + std::to_string(i)] = {{"$id", "d" + std::to_string(i)}};
  try {
    Schema::compile(many);
    ADD_FAILURE() << "compiled";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.sqlstate(), orch::sqlstate::program_limit_exceeded);
  }
}

TEST(JsonSchemaReferences, FormatAssertsOnlyWhereAsked) {
  const char* text = R"({"properties": {"at": {"format": "date-time"}, "ip": {"format": "ipv4"}}})";
  json bad = json::parse(R"({"at": "2026-02-30T10:00:00Z", "ip": "256.1.1.1"})");
  EXPECT_TRUE(compile(text)->is_valid(bad));  // an annotation by default
  CompileOptions asserting;
  asserting.format_assertion = true;
  EXPECT_EQ(violations(*Schema::compile(json::parse(text), asserting), bad),
            R"(/at: "2026-02-30T10:00:00Z" is not a valid "date-time" (format); /ip: "256.1.1.1" is not a valid "ipv4" (format))");
  EXPECT_TRUE(Schema::compile(json::parse(text), asserting)->is_valid(json::parse(R"({"at": "2024-02-29T23:59:60Z"})")));
  // Or the schema's metaschema asks, with the format-assertion vocabulary.
  Documents documents = {{"https://example.com/meta/formats", json::parse(R"({
      "$vocabulary": {"https://json-schema.org/draft/2020-12/vocab/core": true,
                      "https://json-schema.org/draft/2020-12/vocab/format-assertion": true}})")}};
  auto asked = compile(R"({"$schema": "https://example.com/meta/formats", "format": "uuid"})", &documents);
  EXPECT_FALSE(asked->is_valid("not-a-uuid"));
  EXPECT_TRUE(asked->is_valid("123e4567-e89b-12d3-a456-426614174000"));
}
