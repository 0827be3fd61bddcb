// A JSON Schema (draft 2020-12) validator for capability contracts, on nlohmann/json.
//
// The whole of draft 2020-12's core, applicator, unevaluated and validation vocabularies:
// type, enum, const, the number, string, array and object keywords, properties,
// patternProperties, additionalProperties, propertyNames, prefixItems, items, contains,
// dependentRequired, dependentSchemas, allOf, anyOf, oneOf, not, if/then/else, boolean
// schemas, unevaluatedProperties and unevaluatedItems (which see what every applicator,
// through $refs too, evaluated); $id with base-URI resolution (RFC 3986), $anchor, $defs,
// $ref (JSON Pointers, anchors, other documents), $dynamicAnchor and $dynamicRef (resolved
// in the dynamic scope), $schema and $vocabulary (a metaschema without the validation
// vocabulary turns its keywords off; one that requires an unknown vocabulary is refused).
// The 2020-12 metaschemas are built in (metaschemas.hpp); other documents are only those
// the caller gives (CompileOptions::documents: a project's registered schemas): nothing is
// fetched. "format" is an annotation, or an assertion where the format-assertion
// vocabulary or CompileOptions::format_assertion asks (formats.hpp). Unknown keywords are ignored, as the
// specification says. JSON-Schema-Test-Suite's required draft 2020-12 part passes whole
// (json_schema_suite_test.cpp). Patterns are ECMA-262 regular expressions matched with RE2
// (see ecma_regex.hpp): in time linear in the string, on code points, never backtracking;
// the few features that need backtracking (backreferences, lookaround) are refused when
// the schema is compiled.
//
// A schema is compiled once (checked, $refs resolved, patterns compiled) and then
// validates any number of instances. Validation time is linear in the instance for the
// common keywords. Nothing recurses without a bound: a schema document nested deeper
// than kMaxJsonDepth is refused at compile, which does not recurse at all; validation
// refuses an instance nested deeper than kMaxJsonDepth, and recurses at most
// kMaxValidationDepth levels.
//
// Nor does anything take time without a bound. $refs let a schema apply one subschema
// many times to the same value ("d0": {"allOf": [{"$ref": "#/$defs/d1"}, {"$ref":
// "#/$defs/d1"}]}, "d1": ... doubles the work at every level), and a recursive schema can
// do the same at every level of the instance; validation runs in PostgreSQL backends and
// in the scheduler, which cannot interrupt it. So every validate() and is_valid() has a
// work budget (kEvaluationBudgetBase + kEvaluationsPerInstanceUnit per unit of the
// instance's size) and stops with a UserError (SQLSTATE 54000) when it is spent; and a
// schema in which one value could need more than kEvaluationBudgetBase evaluations is
// refused when it is compiled.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/json_limits.hpp"

namespace orch::schema {

using json = nlohmann::json;

// How deep validation may recurse: every level of the instance and every step that applies
// another schema to the same value ($ref, allOf, ...) is one. Twice the JSON depth, so that
// the usual recursive schema ({"items": {"$ref": "#"}}: two steps a level) validates any
// instance parse_json_limited() accepts. json_limits_test.cpp runs it at this depth on a
// 1 MiB stack.
inline constexpr std::size_t kMaxValidationDepth = 2 * kMaxJsonDepth;

// The work budget of one validate() or is_valid(), in evaluations: kEvaluationBudgetBase
// plus kEvaluationsPerInstanceUnit per unit of the instance's size, which is its number
// of values (scalars, arrays, objects) plus the bytes of its strings and keys /
// kBytesPerEvaluation. An evaluation is about one check() of a subschema against a value
// (20-40 ns in a Release build): applying a subschema to a value, visiting a property,
// checking a "required", "dependentRequired" or "dependentSchemas" entry, a property
// unevaluatedProperties looks at, merging what a subschema evaluated (1 + its properties),
// looking up a $dynamicRef's target (1 + the dynamic scope's depth / 16), comparing with
// an "enum" or "const" candidate (per unit of its size), and per kBytesPerEvaluation bytes
// for "minLength"/"maxLength" and property names; a "uniqueItems" item is 8, a pattern
// search 4 + 1 per 16 bytes for a program of up to 12 RE2 instructions, else
// 4 + (bytes + 1) x (instructions + 32) / 16, its worst case (see json_schema.cpp).
//
// Why these numbers (measured in Release on the development machine, json_schema_budget_test
// has the attacks): the base is spent in 10-25 ms, so a small instance cannot hold a
// backend or the scheduler longer, and it is 12 times what any other unit test needs (the
// most is 81,927). A large instance needs 4-5 evaluations per unit: the 10 MB benchmark
// document 2,489,270 for 619,072 units, 100,000 items of a typical schema 3.6 million for
// 740,452 units; 32 per unit leaves 6-8 times that for schemas heavier than these, while
// the worst case stays a fixed multiple of reading the instance: about 1 s for 10 MB (6
// times parsing it), 0.1 s for the scheduler's default 1 MB output limit.
inline constexpr std::uint64_t kEvaluationBudgetBase = 1000000;
inline constexpr std::uint64_t kEvaluationsPerInstanceUnit = 32;
inline constexpr std::size_t kBytesPerEvaluation = 64;

// One way an instance breaks its schema: where (a JSON Pointer into the instance, "" for
// the whole of it) and why. A violation found through a $ref or $dynamicRef names the
// innermost one: "/items/0: does not match $defs/address: is missing the required property
// \"city\"", or, deeper than where it applied, "/items/0/city: 5 is not of type \"string\"
// (in $defs/address)".
struct Violation {
  std::string path;
  std::string message;
};

// "/findings/0/severity: \"urgent\" is not one of [\"low\",\"medium\",\"high\"]"
std::string describe(const Violation& violation);
// The first few violations, joined with "; ".
std::string describe(const std::vector<Violation>& violations, std::size_t shown = 3);

// Documents a schema may refer to by absolute URI (no fragment), besides the built-in
// metaschemas: a project's registered schemas.
using Documents = std::map<std::string, json>;

struct CompileOptions {
  const Documents* documents = nullptr;
  // The URI the schema itself is known by (a registered schema's), which its relative
  // references resolve against when it has no "$id"; "" for none.
  std::string base_uri;
  // For checking a schema where the documents are not at hand (normalize_agent_spec): a
  // reference to an unknown document is then taken as the schema true instead of refused;
  // the real check, with the project's registered schemas, comes when it is stored.
  bool unknown_documents_accepted = false;
  // "format" asserts (formats.hpp) everywhere, as if every metaschema had the
  // format-assertion vocabulary; without it, only where a schema's metaschema has it.
  bool format_assertion = false;
};

class Schema {
 public:
  // Checks and compiles `schema`. Throws UserError naming the schema location of the
  // problem: "invalid JSON Schema at /properties/age/minimum: must be a number, not string";
  // also for a document nested deeper than kMaxJsonDepth and for a pattern RE2 cannot
  // match (naming the feature, with a hint); and (SQLSTATE 54000) for a schema in which
  // applying one subschema to one value may take more than kEvaluationBudgetBase
  // evaluations, counting every $ref, allOf, anyOf, oneOf, not, if, then, else and
  // dependentSchemas step, before it looks into the value.
  // References are resolved against `options.documents` and the built-in metaschemas;
  // one that resolves nowhere is refused, naming it.
  static std::shared_ptr<const Schema> compile(const json& schema, const CompileOptions& options = {});

  // The URIs of options.documents that the schema uses (through $ref, $dynamicRef,
  // $schema, directly or through each other), sorted.
  const std::vector<std::string>& documents_used() const { return documents_used_; }

  // At most max_violations violations; none means valid. Throws UserError when the
  // instance nests deeper than kMaxJsonDepth, or validation deeper than
  // kMaxValidationDepth (counting $ref hops), or when validation would need more than its
  // work budget (see kEvaluationBudgetBase; SQLSTATE 54000).
  std::vector<Violation> validate(const json& instance, std::size_t max_violations = 20) const;
  bool is_valid(const json& instance) const;

  struct Node;

 private:
  Schema() = default;
  std::deque<Node> nodes_;  // stable addresses: nodes point at each other
  const Node* root_ = nullptr;
  // $dynamicAnchor name -> resource -> its schema, for the $dynamicRefs that need them
  // (unordered_map: pointers to its values, which nodes keep, stay valid).
  std::unordered_map<std::string, std::unordered_map<std::uint32_t, const Node*>> dynamic_anchors_;
  bool tracks_scope_ = false;  // whether some $dynamicRef needs the dynamic scope
  std::vector<std::string> documents_used_;
  friend class Compiler;
  friend class Validator;
};

}  // namespace orch::schema
