// A JSON Schema (draft 2020-12) validator for capability contracts, on nlohmann/json.
//
// Supported: type (with "integer" and type arrays), enum, const, properties, required,
// additionalProperties, patternProperties, propertyNames, items, prefixItems, contains,
// minContains, maxContains, minItems, maxItems, uniqueItems, minProperties, maxProperties,
// dependentRequired, dependentSchemas, minimum, maximum, exclusiveMinimum,
// exclusiveMaximum, multipleOf, minLength, maxLength (in Unicode code points), pattern,
// allOf, anyOf, oneOf, not, if/then/else, boolean schemas, $defs with local $ref
// ("#", "#/$defs/x", JSON Pointer escapes ~0 ~1 and %-encoding). "format" is an
// annotation only. Unknown keywords are ignored, as the specification says.
//
// Not supported: references to other documents, $anchor and $dynamicRef (refused when a
// schema uses them in a $ref), unevaluatedProperties/unevaluatedItems (ignored). Patterns
// are ECMAScript regular expressions as std::regex implements them: no lookbehind, no
// named groups, no \p{...} classes, and '.' matches a byte, not a code point; strings
// longer than kMaxPatternSubject bytes are refused rather than matched, and a pattern
// that backtracks exponentially (such as (a+)+b) takes exponential time: schemas come
// from orchestration_admin, who should not write one.
//
// A schema is compiled once (checked, $refs resolved, patterns compiled) and then
// validates any number of instances. Validation time is linear in the instance for the
// common keywords; nesting deeper than kMaxDepth is an error, never a stack overflow.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace orch::schema {

using json = nlohmann::json;

inline constexpr int kMaxDepth = 256;

// libstdc++'s std::regex recurses once or more per character: a grouped loop such as
// ^(a|b)*$ overflows an 8 MB stack at about 8,000 characters under ASan and 12,000
// without. Longer strings are refused, not matched. The fuzz build lowers the limit
// further, because std::regex also backtracks exponentially on patterns like (a+)+b.
#ifndef ORCH_MAX_PATTERN_SUBJECT
#define ORCH_MAX_PATTERN_SUBJECT 2000
#endif
inline constexpr std::size_t kMaxPatternSubject = ORCH_MAX_PATTERN_SUBJECT;

// One way an instance breaks its schema: where (a JSON Pointer into the instance, "" for
// the whole of it) and why.
struct Violation {
  std::string path;
  std::string message;
};

// "/findings/0/severity: \"urgent\" is not one of [\"low\",\"medium\",\"high\"]"
std::string describe(const Violation& violation);
// The first few violations, joined with "; ".
std::string describe(const std::vector<Violation>& violations, std::size_t shown = 3);

class Schema {
 public:
  // Checks and compiles `schema`. Throws UserError naming the schema location of the
  // problem: "invalid JSON Schema at /properties/age/minimum: must be a number, not string".
  static std::shared_ptr<const Schema> compile(const json& schema);

  // At most max_violations violations; none means valid. Throws UserError when the
  // instance nests deeper than kMaxDepth (counting $ref hops).
  std::vector<Violation> validate(const json& instance, std::size_t max_violations = 20) const;
  bool is_valid(const json& instance) const;

  struct Node;

 private:
  Schema() = default;
  std::deque<Node> nodes_;  // stable addresses: nodes point at each other
  const Node* root_ = nullptr;
  friend class Compiler;
};

}  // namespace orch::schema
