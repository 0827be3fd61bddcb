// A node's "when" condition: whether it runs or is SKIPPED.
//
//   true / false                                a JSON boolean
//   "{{ nodes.triage.output.notify }}"          one operand: its truthiness
//   "{{ nodes.scan.output.count }} > 0"         two operands and a comparison
//   "{{ context.env }} == \"prod\""             operands are placeholders or JSON literals
//
// Comparisons: == and != compare any JSON values (deep equality; 1 == 1.0); <, <=, >, >=
// compare two numbers or two strings. Falsy values: false, null, 0, "", [] and {}.
#pragma once

#include <nlohmann/json.hpp>

#include "core/template/template.hpp"

namespace orch::templating {

// Throws UserError if `when` is not a boolean or a well-formed condition string.
void check_condition(const nlohmann::json& when);

// The node ids the condition references.
std::set<std::string> condition_nodes(const nlohmann::json& when);

// Evaluates the condition against `scope`. Throws UserError when a reference does not
// resolve or a comparison's operands cannot be compared.
bool evaluate_condition(const nlohmann::json& when, const nlohmann::json& scope);

bool truthy(const nlohmann::json& value);

}  // namespace orch::templating
