// The JSON Schema validator's work budget (json_schema.hpp, kEvaluationBudgetBase): schemas
// that multiply the work exponentially are refused when compiled or stop validating with a
// UserError (SQLSTATE 54000), quickly; real documents, however large, still validate.
// No timing assertions: ctest's timeout guards the exponential cases, which took hours
// (k = 40) before the budget.
#include "core/schema/json_schema.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "core/common/user_error.hpp"

using nlohmann::json;
using orch::UserError;
using orch::schema::Schema;

namespace {

// d0 = keyword [$ref d1, $ref d1], ..., d(k-1) = keyword [$ref dk, $ref dk], dk = leaf:
// applying d0 to a value applies dk to it 2^k times.
json chain(int k, const char* keyword, const json& leaf = {{"type", "string"}}) {
  json defs = json::object();
  for (int i = 0; i < k; ++i) {
    std::string next = "#/$defs/d" + std::to_string(i + 1);
    defs["d" + std::to_string(i)] = {{keyword, {{{"$ref", next}}, {{"$ref", next}}}}};
  }
  defs["d" + std::to_string(k)] = leaf;
  return {{"$defs", defs}, {"$ref", "#/$defs/d0"}};
}

// [[...["x"]...]], `levels` arrays deep.
json nested(int levels, json leaf = "x") {
  for (int i = 0; i < levels; ++i) leaf = json::array({std::move(leaf)});
  return leaf;
}

// The UserError `fn` throws ("" if none), with its SQLSTATE.
template <typename Fn>
std::pair<std::string, std::string> error_of(Fn&& fn) {
  try {
    fn();
  } catch (const UserError& e) {
    return {e.what(), e.sqlstate()};
  }
  return {"", ""};
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.compare(0, prefix.size(), prefix) == 0; }

const char* kTooExpensive = "JSON Schema validation is too expensive: more than ";

}  // namespace

TEST(JsonSchemaBudget, ExponentialRefChainsAreRefusedWhenCompiled) {
  // The red team's schema: k = 28 took 14.7 s, k = 40 hours. Every combinator multiplies
  // (anyOf and oneOf apply all their schemas to a value that fails or matches them all).
  for (const char* keyword : {"allOf", "anyOf", "oneOf"}) {
    auto [message, sqlstate] = error_of([&] { Schema::compile(chain(40, keyword)); });
    EXPECT_EQ(message, "invalid JSON Schema at /$defs/d22: applying it to one value may take more than 1000000 "
                       "evaluations (its $refs and allOf/anyOf/oneOf/not/if/then/else/dependentSchemas apply the "
                       "same subschemas to the same value again and again)")
        << keyword;
    EXPECT_EQ(sqlstate, orch::sqlstate::program_limit_exceeded);
  }
  // Also through not, if/then/else and dependentSchemas.
  json defs = json::object();
  for (int i = 0; i < 30; ++i) {
    std::string next = "#/$defs/d" + std::to_string(i + 1);
    defs["d" + std::to_string(i)] = {{"if", {{"$ref", next}}}, {"then", {{"$ref", next}}},
                                     {"dependentSchemas", {{"a", {{"$ref", next}}}}}};
  }
  defs["d30"] = true;
  EXPECT_NE(error_of([&] { Schema::compile(json{{"$defs", defs}, {"$ref", "#/$defs/d0"}}); }).first.find(
                "may take more than 1000000 evaluations"),
            std::string::npos);
  // Short chains, and sharing that does not multiply (a long chain of single $refs, a
  // definition used from many places), are fine.
  EXPECT_TRUE(Schema::compile(chain(10, "allOf"))->is_valid("x"));
  EXPECT_FALSE(Schema::compile(chain(10, "allOf"))->is_valid(1));
  json shared = json::object();
  shared["$defs"]["s"] = {{"type", "string"}};
  for (int i = 0; i < 1000; ++i) shared["properties"]["p" + std::to_string(i)] = {{"$ref", "#/$defs/s"}};
  EXPECT_TRUE(Schema::compile(shared)->is_valid(json{{"p1", "x"}, {"p999", "y"}}));
}

TEST(JsonSchemaBudget, RepetitionThroughTheInstanceStopsAtTheBudget) {
  // Every level of the instance doubles the work, so no compile-time count can see it:
  // 2^40 evaluations for an instance of 41 values.
  auto schema = Schema::compile(json::parse(R"({"items": {"allOf": [{"$ref": "#"}, {"$ref": "#"}]}})"));
  // The budget: 1,000,000 + 32 per unit of the instance (41 values, 1 byte of string).
  auto [message, sqlstate] = error_of([&] { schema->validate(nested(40)); });
  EXPECT_TRUE(starts_with(message, std::string(kTooExpensive) + "1001312 evaluations (the schema's references or "
                                                                "combinators multiply the work; stopped at /0/0/"))
      << message;
  EXPECT_EQ(sqlstate, orch::sqlstate::program_limit_exceeded);
  EXPECT_TRUE(starts_with(error_of([&] { schema->is_valid(nested(40)); }).first, kTooExpensive));
  try {
    schema->is_valid(nested(40));
  } catch (const UserError& e) {
    EXPECT_NE(e.detail().find("1000000 evaluations plus 32 per unit of the instance's size (41 units"),
              std::string::npos)
        << e.detail();
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_TRUE(schema->is_valid(nested(10)));  // 2^10: within the budget

  // anyOf alternatives that fail only at the bottom: every level tries both.
  auto alternatives = Schema::compile(json::parse(
      R"({"anyOf": [{"type": "array", "items": {"$ref": "#"}}, {"type": "array", "items": {"$ref": "#"}}, {"type": "string"}]})"));
  EXPECT_TRUE(starts_with(error_of([&] { alternatives->is_valid(nested(40, 1)); }).first, kTooExpensive));
  EXPECT_TRUE(alternatives->is_valid(nested(40)));  // the first alternative matches at every level

  // A chain just below the compile-time limit, applied to every item.
  json per_item_schema = chain(15, "allOf");
  per_item_schema.erase("$ref");
  per_item_schema["items"] = {{"$ref", "#/$defs/d0"}};
  auto per_item = Schema::compile(per_item_schema);
  EXPECT_TRUE(per_item->is_valid(json::array({"a", "b"})));
  EXPECT_TRUE(starts_with(error_of([&] { per_item->validate(json(std::vector<std::string>(1000, "x"))); }).first,
                          kTooExpensive));
}

TEST(JsonSchemaBudget, KeywordsThatReadMoreThanOneValueAreCharged) {
  // Each of these repeats a keyword that reads the whole instance 2^17 times, on an
  // instance whose own budget allows far less.
  json big_array = json::array();
  for (int i = 0; i < 2000; ++i) big_array.push_back("item " + std::to_string(i));
  json big_object = json::object();
  for (int i = 0; i < 2000; ++i) big_object["key" + std::to_string(i)] = i;
  std::string long_text(100000, 'a');
  struct Case {
    json leaf;
    const json& instance;
  };
  json long_string = long_text;
  for (const Case& c : {Case{json::parse(R"({"uniqueItems": true})"), big_array},
                        Case{json::parse(R"({"contains": {"const": 0}})"), big_array},
                        Case{json{{"const", big_array}}, big_array},
                        Case{json::parse(R"({"enum": [1, 2, 3, 4, 5, 6, 7, 8, 9, "x"]})"), big_array[0]},
                        Case{json::parse(R"({"properties": {"x": true}})"), big_object},
                        Case{json::parse(R"({"patternProperties": {"^k": true}})"), big_object},
                        Case{json::parse(R"({"propertyNames": {"maxLength": 10}})"), big_object},
                        Case{json::parse(R"({"maxLength": 1000000})"), long_string},
                        Case{json::parse(R"({"pattern": "^a+$"})"), long_string}}) {
    auto schema = Schema::compile(chain(17, "allOf", c.leaf));  // 2^17 applications of the leaf
    EXPECT_TRUE(starts_with(error_of([&] { schema->is_valid(c.instance); }).first, kTooExpensive)) << c.leaf;
    EXPECT_LE(Schema::compile(c.leaf)->validate(c.instance).size(), 1u) << c.leaf;  // once is fine
  }
}

TEST(JsonSchemaBudget, PatternSearchesAreChargedForTheirWorstCase) {
  // One RE2 search cannot be interrupted, and when RE2's DFA runs out of states a byte
  // costs up to ~18 ns per instruction of the pattern's program: "a{1000}b" (1005
  // instructions) on 1 MB of "a" took 10 s, an array of random a/b strings against
  // a[ab]{999}c 9 s. Each search is charged for that before it runs, so these stop at the
  // budget (in milliseconds) instead of running.
  auto [message, sqlstate] = error_of([] {
    Schema::compile(json::parse(R"({"type": "string", "pattern": "a{1000}b"})"))->validate(std::string(1000000, 'a'));
  });
  EXPECT_TRUE(starts_with(message, kTooExpensive)) << message;
  EXPECT_EQ(sqlstate, "54000");
  std::mt19937 random(7);
  json strings = json::array();
  for (int i = 0; i < 1000; ++i) {
    std::string text(1000, 'a');
    for (char& c : text) c = random() % 2 ? 'a' : 'b';
    strings.push_back(text);
  }
  for (const char* pattern : {"a[ab]{30}c", "a[ab]{200}c", "a[ab]{999}c"}) {
    auto schema = Schema::compile(json{{"items", {{"not", {{"pattern", pattern}}}}}});
    EXPECT_TRUE(starts_with(error_of([&] { schema->is_valid(strings); }).first, kTooExpensive)) << pattern;
  }
  // Short strings are still matched with such patterns.
  auto thousand = Schema::compile(json::parse(R"({"pattern": "a{1000}b"})"));
  EXPECT_TRUE(thousand->is_valid(std::string(1000, 'a') + "b"));
  EXPECT_FALSE(thousand->is_valid(std::string(999, 'a') + "b"));
  // A small program (at most 12 instructions) has too few DFA states to run out of them,
  // and is charged by the byte as before: a 1 MB string of base64 is fine.
  auto base64 = Schema::compile(json::parse(R"({"pattern": "^[A-Za-z0-9+/]*={0,2}$"})"));
  EXPECT_TRUE(base64->is_valid(std::string(1000000, 'Q') + "=="));
  EXPECT_FALSE(base64->is_valid(std::string(1000000, 'Q') + "!"));
  // A larger program on typical short strings (identifiers) is fine too.
  auto names = Schema::compile(json::parse(R"({"items": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]{0,63}$"}})"));
  json identifiers = json::array();
  for (int i = 0; i < 1000; ++i) identifiers.push_back("identifier_" + std::to_string(i));
  EXPECT_TRUE(names->is_valid(identifiers));
}

TEST(JsonSchemaBudget, LargeRealDocumentsStillValidate) {
  // 100,000 items against a schema with a few keywords each: about 20 evaluations an
  // item, far beyond the base budget, within the budget the instance's size gives.
  const char* schema_text = R"({"type": "array", "items": {"type": "object", "required": ["id", "kind"],
      "properties": {"id": {"type": "integer", "minimum": 1}, "kind": {"enum": ["a", "b", "c"]},
                     "name": {"type": "string", "pattern": "^[a-z]+[0-9]*$", "maxLength": 40},
                     "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}},
      "additionalProperties": false}})";
  auto schema = Schema::compile(json::parse(schema_text));
  json items = json::array();
  for (int i = 1; i <= 100000; ++i)
    items.push_back({{"id", i}, {"kind", i % 2 ? "a" : "c"}, {"name", "item" + std::to_string(i)}, {"tags", {"x", "y"}}});
  EXPECT_TRUE(schema->is_valid(items));
  EXPECT_TRUE(schema->validate(items).empty());
  // Violations everywhere cost no more than validity: 20 are kept, the rest only counted.
  for (auto& item : items) item["kind"] = "d";
  EXPECT_EQ(schema->validate(items).size(), 20u);

  // A long enum of strings is looked up, not scanned: 20,000 values x 5,000 candidates
  // would otherwise be 100 million comparisons, over the budget.
  json codes = json::array();
  for (int i = 0; i < 5000; ++i) codes.push_back("code-" + std::to_string(i));
  auto enum_schema = Schema::compile(json{{"items", {{"enum", codes}}}});
  json values = json::array();
  for (int i = 0; i < 20000; ++i) values.push_back("code-" + std::to_string(4999 - i % 5000));
  EXPECT_TRUE(enum_schema->is_valid(values));
  values[77] = "code-5000";
  EXPECT_EQ(orch::schema::describe(enum_schema->validate(values)), "/77: \"code-5000\" is not one of a long array");
  // A mixed enum is still compared value by value, with the same answers.
  auto mixed = Schema::compile(json::parse(R"({"enum": [1, "1", [1], {"a": 1}, null]})"));
  EXPECT_TRUE(mixed->is_valid(1.0));
  EXPECT_TRUE(mixed->is_valid(json::parse(R"({"a": 1})")));
  EXPECT_FALSE(mixed->is_valid(json::parse(R"([1, 1])")));

  // A recursive schema over a deep, wide tree: linear, so any size is fine.
  auto tree = Schema::compile(json::parse(R"({"type": "object", "properties": {
      "children": {"type": "array", "items": {"$ref": "#"}}}})"));
  json node = json::object();
  for (int level = 0; level < 200; ++level) {
    json children = json::array();
    for (int i = 0; i < 100; ++i) children.push_back(json::object());
    children.push_back(std::move(node));
    node = json::object();  // not json{{...}}: an initializer list would copy the subtree
    node["children"] = std::move(children);
  }
  EXPECT_TRUE(tree->is_valid(node));
}
