#include "core/schema/json_schema.hpp"

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"

using nlohmann::json;
using orch::UserError;
using orch::schema::Schema;

namespace {

// "" when `instance` is valid, else every violation ("path: message", joined by "; ").
std::string check(const char* schema, const json& instance) {
  auto compiled = Schema::compile(json::parse(schema));
  auto violations = compiled->validate(instance);
  EXPECT_EQ(violations.empty(), compiled->is_valid(instance)) << schema << " " << instance;
  return orch::schema::describe(violations, 10);
}
std::string check(const char* schema, const char* instance) { return check(schema, json::parse(instance)); }

std::string compile_error(const char* schema) {
  try {
    Schema::compile(json::parse(schema));
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(JsonSchema, TheExampleFromTheIssue) {
  const char* schema = R"({"type": "object", "properties": {"findings": {"type": "array", "items": {
      "type": "object", "properties": {"severity": {"enum": ["low", "medium", "high"]}}}}}})";
  EXPECT_EQ(check(schema, R"({"findings": [{"severity": "urgent"}]})"),
            R"(/findings/0/severity: "urgent" is not one of ["low","medium","high"])");
  EXPECT_EQ(check(schema, R"({"findings": [{"severity": "low"}, {"severity": "high"}]})"), "");
}

TEST(JsonSchema, BooleanSchemas) {
  EXPECT_EQ(check("true", "42"), "");
  EXPECT_EQ(check("false", "42"), "(root): no value is allowed here (the schema is false)");
  EXPECT_EQ(check(R"({"items": false})", "[]"), "");
  EXPECT_EQ(check(R"({"items": false})", "[1]"), "/0: no value is allowed here (the schema is false)");
}

TEST(JsonSchema, Type) {
  EXPECT_EQ(check(R"({"type": "string"})", R"("x")"), "");
  EXPECT_EQ(check(R"({"type": "string"})", "1"), R"((root): 1 is not of type "string")");
  EXPECT_EQ(check(R"({"type": "integer"})", "1.0"), "");  // 1.0 is an integer in JSON Schema
  EXPECT_EQ(check(R"({"type": "integer"})", "1.5"), R"((root): 1.5 is not of type "integer")");
  EXPECT_EQ(check(R"({"type": "number"})", "7"), "");
  EXPECT_EQ(check(R"({"type": ["string", "null"]})", "null"), "");
  EXPECT_EQ(check(R"({"type": ["string", "null"]})", "true"), R"((root): true is not of type "null" or "string")");
  EXPECT_EQ(check(R"({"type": "object"})", "[]"), R"((root): [] is not of type "object")");
  EXPECT_EQ(check(R"({"type": "array"})", "{}"), R"((root): {} is not of type "array")");
  EXPECT_EQ(check(R"({"type": "boolean"})", "0"), R"((root): 0 is not of type "boolean")");
}

TEST(JsonSchema, EnumAndConst) {
  EXPECT_EQ(check(R"({"enum": [1, "a", null, {"x": [1]}]})", R"({"x": [1.0]})"), "");
  EXPECT_EQ(check(R"({"enum": [1, "a"]})", "2"), R"((root): 2 is not one of [1,"a"])");
  EXPECT_EQ(check(R"({"const": {"a": 1}})", R"({"a": 1})"), "");
  EXPECT_EQ(check(R"({"const": "x"})", R"("y")"), R"((root): "y" is not "x")");
}

TEST(JsonSchema, Numbers) {
  EXPECT_EQ(check(R"({"minimum": 10})", "10"), "");
  EXPECT_EQ(check(R"({"minimum": 10})", "9.5"), "(root): 9.5 is less than the minimum 10.0");
  EXPECT_EQ(check(R"({"maximum": 10})", "11"), "(root): 11 is greater than the maximum 10.0");
  EXPECT_EQ(check(R"({"exclusiveMinimum": 0})", "0"), "(root): 0 is not greater than 0.0");
  EXPECT_EQ(check(R"({"exclusiveMaximum": 1})", "1"), "(root): 1 is not less than 1.0");
  EXPECT_EQ(check(R"({"multipleOf": 5})", "15"), "");
  EXPECT_EQ(check(R"({"multipleOf": 0.1})", "0.3"), "");  // no false alarm from binary floats
  EXPECT_EQ(check(R"({"multipleOf": 5})", "7"), "(root): 7 is not a multiple of 5.0");
  EXPECT_EQ(check(R"({"minimum": 10})", R"("not a number")"), "");  // applies to numbers only
}

TEST(JsonSchema, Strings) {
  EXPECT_EQ(check(R"({"minLength": 2})", R"("ab")"), "");
  EXPECT_EQ(check(R"({"minLength": 3})", R"("ab")"), R"((root): "ab" is shorter than 3 characters)");
  EXPECT_EQ(check(R"({"maxLength": 2})", R"("abc")"), R"((root): "abc" is longer than 2 characters)");
  // Counted in code points: "héé" is 3 characters (5 bytes), "😀" is 1.
  EXPECT_EQ(check(R"({"maxLength": 3})", "\"h\xc3\xa9\xc3\xa9\""), "");
  EXPECT_EQ(check(R"({"minLength": 2})", "\"\xf0\x9f\x98\x80\""), "(root): \"\xf0\x9f\x98\x80\" is shorter than 2 characters");
  // Counts too large for size_t (found by the fuzzer: the conversion was undefined behaviour).
  EXPECT_EQ(check(R"({"maxLength": 1e300, "maxItems": 18446744073709551616})", R"("ab")"), "");
  EXPECT_NE(check(R"({"minLength": 277777777777777777777777777777777777777777})", R"("ab")"), "");
  EXPECT_EQ(check(R"({"pattern": "^[a-z]+-[0-9]+$"})", R"("scan-42")"), "");
  EXPECT_EQ(check(R"({"pattern": "[0-9]"})", R"("x9y")"), "");  // not anchored: a search
  EXPECT_EQ(check(R"({"pattern": "^[0-9]+$"})", R"("12a")"), R"((root): "12a" does not match the pattern "^[0-9]+$")");
  // RE2 needs no stack per character and no limit on the string: a megabyte matches, and
  // so does a property name as long.
  std::string huge(1 << 20, 'a');
  EXPECT_EQ(check(R"({"pattern": "^(a|b)*$"})", json(huge)), "");
  EXPECT_EQ(check(R"({"pattern": "^(a|b)*$"})", json(huge + "c")),
            "(root): \"" + std::string(39, 'a') + "...\" does not match the pattern \"^(a|b)*$\"");
  EXPECT_EQ(check(R"({"patternProperties": {"^(a|b)*$": {"type": "null"}}})", json{{huge, 1}}),
            "/" + huge + ": 1 is not of type \"null\"");
}

TEST(JsonSchema, Arrays) {
  EXPECT_EQ(check(R"({"items": {"type": "integer"}})", "[1, 2, 3]"), "");
  EXPECT_EQ(check(R"({"items": {"type": "integer"}})", R"([1, "2", 3.5])"),
            R"(/1: "2" is not of type "integer"; /2: 3.5 is not of type "integer")");
  EXPECT_EQ(check(R"({"prefixItems": [{"type": "string"}, {"type": "number"}], "items": false})", R"(["a", 1])"), "");
  EXPECT_EQ(check(R"({"prefixItems": [{"type": "string"}, {"type": "number"}], "items": false})", R"([1, 1, 1])"),
            R"(/0: 1 is not of type "string"; /2: no value is allowed here (the schema is false))");
  EXPECT_EQ(check(R"({"minItems": 2})", "[1]"), "(root): has 1 item, fewer than the minimum 2");
  EXPECT_EQ(check(R"({"maxItems": 1})", "[1, 2]"), "(root): has 2 items, more than the maximum 1");
  EXPECT_EQ(check(R"({"uniqueItems": true})", R"([1, {"a": [1]}, "1"])"), "");
  EXPECT_EQ(check(R"({"uniqueItems": true})", R"([1, 2, 1.0])"), "(root): items 0 and 2 are equal, but uniqueItems is set");
  EXPECT_EQ(check(R"({"uniqueItems": true})", R"([{"a": 1, "b": 2}, {"b": 2, "a": 1}])"),
            "(root): items 0 and 1 are equal, but uniqueItems is set");
  EXPECT_EQ(check(R"({"contains": {"const": "x"}})", R"(["a", "x"])"), "");
  EXPECT_EQ(check(R"({"contains": {"const": "x"}})", R"(["a"])"), R"((root): contains no item that matches "contains")");
  EXPECT_EQ(check(R"({"contains": {"type": "string"}, "minContains": 2, "maxContains": 3})", R"(["a", 1])"),
            R"((root): contains 1 item that match "contains", fewer than 2)");
  EXPECT_EQ(check(R"({"contains": {"type": "string"}, "maxContains": 1})", R"(["a", "b"])"),
            R"((root): contains 2 items that match "contains", more than 1)");
  EXPECT_EQ(check(R"({"contains": {"type": "string"}, "minContains": 0})", "[]"), "");
}

TEST(JsonSchema, Objects) {
  const char* person = R"({"type": "object", "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "additionalProperties": false})";
  EXPECT_EQ(check(person, R"({"name": "Ada", "age": 36})"), "");
  EXPECT_EQ(check(person, R"({"name": "Ada"})"), R"((root): is missing the required property "age")");
  EXPECT_EQ(check(person, R"({"name": "Ada", "age": -1, "x": 1})"),
            R"(/age: -1 is less than the minimum 0.0; (root): has the property "x", which is not allowed (additionalProperties))");
  EXPECT_EQ(check(R"({"patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": {"type": "number"}})",
                  R"({"x-a": "s", "b": 1})"), "");
  EXPECT_EQ(check(R"({"patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": {"type": "number"}})",
                  R"({"x-a": 1, "b": "s"})"),
            R"(/b: "s" is not of type "number"; /x-a: 1 is not of type "string")");
  EXPECT_EQ(check(R"({"propertyNames": {"pattern": "^[a-z]+$"}})", R"({"ok": 1, "Bad": 2})"),
            R"((root): has the property name "Bad", which does not match "propertyNames")");
  EXPECT_EQ(check(R"({"minProperties": 1})", "{}"), "(root): has 0 properties, fewer than the minimum 1");
  EXPECT_EQ(check(R"({"maxProperties": 1})", R"({"a": 1, "b": 2})"), "(root): has 2 properties, more than the maximum 1");
  EXPECT_EQ(check(R"({"dependentRequired": {"card": ["address"]}})", R"({"card": 1})"),
            R"((root): has "card" but not "address", which it requires)");
  EXPECT_EQ(check(R"({"dependentRequired": {"card": ["address"]}})", R"({"address": 1})"), "");
  EXPECT_EQ(check(R"({"dependentSchemas": {"card": {"required": ["cvv"]}}})", R"({"card": 1})"),
            R"((root): is missing the required property "cvv")");
  // Keys with '/' and '~' are escaped in paths.
  EXPECT_EQ(check(R"({"additionalProperties": {"type": "string"}})", R"({"a/b~c": 1})"),
            R"(/a~1b~0c: 1 is not of type "string")");
}

TEST(JsonSchema, Combinators) {
  EXPECT_EQ(check(R"({"allOf": [{"minimum": 1}, {"maximum": 3}]})", "5"), "(root): 5 is greater than the maximum 3.0");
  EXPECT_EQ(check(R"({"anyOf": [{"type": "string"}, {"type": "integer"}]})", "1"), "");
  EXPECT_EQ(check(R"({"anyOf": [{"type": "string"}, {"type": "integer"}]})", "1.5"),
            "(root): does not match any of the 2 schemas in anyOf");
  EXPECT_EQ(check(R"({"oneOf": [{"type": "integer"}, {"minimum": 2}]})", "1"), "");
  EXPECT_EQ(check(R"({"oneOf": [{"type": "integer"}, {"minimum": 2}]})", "3"),
            "(root): matches oneOf schemas 0 and 1; exactly one must match");
  EXPECT_EQ(check(R"({"oneOf": [{"type": "integer"}, {"minimum": 2}]})", "1.5"),
            "(root): does not match any of the 2 schemas in oneOf");
  EXPECT_EQ(check(R"({"not": {"type": "null"}})", "null"), R"((root): must not match the schema in "not")");
  const char* conditional = R"({"if": {"properties": {"kind": {"const": "card"}}},
    "then": {"required": ["number"]}, "else": {"required": ["iban"]}})";
  EXPECT_EQ(check(conditional, R"({"kind": "card", "number": "4111"})"), "");
  EXPECT_EQ(check(conditional, R"({"kind": "card"})"), R"((root): is missing the required property "number")");
  EXPECT_EQ(check(conditional, R"({"kind": "bank"})"), R"((root): is missing the required property "iban")");
}

TEST(JsonSchema, LocalReferences) {
  const char* tree = R"({"$defs": {"node": {"type": "object", "properties": {
      "value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
    "$ref": "#/$defs/node"})";
  EXPECT_EQ(check(tree, R"({"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]})"), "");
  EXPECT_EQ(check(tree, R"({"value": 1, "children": [{"value": 2, "children": [{"value": "x"}]}]})"),
            R"(/children/0/children/0/value: "x" is not of type "integer" (in $defs/node))");
  // JSON Pointer escapes (~1 is '/', ~0 is '~') and %-encoding in the reference.
  EXPECT_EQ(check(R"({"$defs": {"a/b": {"type": "string"}, "c~d": {"type": "number"}, "e f": {"type": "null"}},
                      "properties": {"x": {"$ref": "#/$defs/a~1b"}, "y": {"$ref": "#/$defs/c~0d"}, "z": {"$ref": "#/$defs/e%20f"}}})",
                  R"({"x": 1, "y": "s", "z": 0})"),
            R"(/x: does not match $defs/a~1b: 1 is not of type "string"; /y: does not match $defs/c~0d: "s" is not of type )"
            R"("number"; /z: does not match $defs/e%20f: 0 is not of type "null")");
  EXPECT_EQ(check(R"({"properties": {"self": {"$ref": "#"}}, "required": ["a"]})", R"({"a": 1, "self": {}})"),
            R"(/self: does not match the root schema: is missing the required property "a")");
}

TEST(JsonSchema, FormatIsAnAnnotationAndUnknownKeywordsAreIgnored) {
  EXPECT_EQ(check(R"({"format": "email"})", R"("not an email")"), "");
  EXPECT_EQ(check(R"({"x-vendor": 1, "title": "t", "description": "d", "examples": [1]})", "1"), "");
}

TEST(JsonSchema, InvalidSchemasAreRefusedWithTheirLocation) {
  EXPECT_EQ(compile_error(R"("object")"), "invalid JSON Schema at the root: a schema must be an object or a boolean, not string");
  EXPECT_EQ(compile_error(R"({"type": "text"})"),
            R"(invalid JSON Schema at /type: "text" is not a type (null, boolean, object, array, number, string, integer))");
  EXPECT_EQ(compile_error(R"({"properties": {"age": {"minimum": "0"}}})"),
            "invalid JSON Schema at /properties/age/minimum: must be a number, not string");
  EXPECT_EQ(compile_error(R"({"minLength": -1})"), "invalid JSON Schema at /minLength: must be a non-negative integer, not -1");
  EXPECT_EQ(compile_error(R"({"maxItems": 1.5})"), "invalid JSON Schema at /maxItems: must be a non-negative integer, not 1.5");
  EXPECT_EQ(compile_error(R"({"required": "name"})"), "invalid JSON Schema at /required: must be an array of property names");
  EXPECT_EQ(compile_error(R"({"anyOf": []})"), "invalid JSON Schema at /anyOf: must be a non-empty array of schemas");
  EXPECT_EQ(compile_error(R"({"items": [{"type": "string"}]})"),
            "invalid JSON Schema at /items: a schema must be an object or a boolean, not array");
  EXPECT_EQ(compile_error(R"({"multipleOf": 0})"), "invalid JSON Schema at /multipleOf: must be greater than 0");
  EXPECT_EQ(compile_error(R"({"pattern": "([a-z]"})"),
            R"(invalid JSON Schema at /pattern: "([a-z]" is not a valid regular expression: missing ): ([a-z])");
  EXPECT_EQ(compile_error(R"({"$ref": "#/$defs/missing"})"),
            R"(invalid JSON Schema at /$ref: $ref "#/$defs/missing" does not resolve: nothing at "/$defs")");
  EXPECT_EQ(compile_error(R"({"$ref": "https://example.com/schema.json"})"),
            R"(invalid JSON Schema at /$ref: $ref "https://example.com/schema.json" does not resolve: no schema is known )"
            R"(as "https://example.com/schema.json")");
  EXPECT_EQ(compile_error(R"({"$ref": "#node"})"),
            R"(invalid JSON Schema at /$ref: $ref "#node" does not resolve: no $anchor or $dynamicAnchor "node" in this schema)");
  EXPECT_EQ(compile_error(R"({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"})"),
            "invalid JSON Schema at /$defs/a: $ref loop #/$defs/a -> #/$defs/b -> #/$defs/b/allOf/0 -> #/$defs/a applies "
            "schemas to the same value for ever");
  EXPECT_EQ(compile_error(R"({"$defs": {"bad": {"type": 5}}})"),
            R"(invalid JSON Schema at /$defs/bad/type: 5 is not a type (null, boolean, object, array, number, string, integer))");
}

TEST(JsonSchema, DeepInstancesAreAnErrorNotACrash) {
  auto schema = Schema::compile(json::parse(R"({"items": {"$ref": "#"}})"));
  json deep = json::array();
  for (int i = 0; i < 1000; ++i) deep = json::array({deep});
  EXPECT_THROW(schema->validate(deep), UserError);
  json shallow = json::array({json::array({json::array()})});
  EXPECT_TRUE(schema->is_valid(shallow));
}

TEST(JsonSchema, ViolationsAreCapped) {
  auto schema = Schema::compile(json::parse(R"({"items": {"type": "string"}})"));
  json many = json::array();
  for (int i = 0; i < 1000; ++i) many.push_back(i);
  EXPECT_EQ(schema->validate(many, 20).size(), 20u);
  EXPECT_EQ(orch::schema::describe(schema->validate(many, 20), 2),
            R"(/0: 0 is not of type "string"; /1: 1 is not of type "string"; and 18 more)");
}
