// Input templating: node inputs may contain placeholders such as {{ context.user.email }},
// {{ nodes.scan.output.findings[0] }}, {{ run.id }} and {{ workflow.name }}.
//
//  - A string that is exactly one placeholder takes the referenced JSON value, type and all.
//  - A placeholder inside a longer string is rendered as text: strings as they are, other
//    values as compact JSON.
//  - Paths use dots and [n] indexes; ["any key"] reaches keys with dots or spaces.
//  - \{{ is a literal "{{" (for prompts that contain templates of their own).
//  - A reference that does not resolve is an error that names it and says why.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace orch::templating {

using json = nlohmann::json;

// One step of a path: an object key or an array index.
using PathStep = std::variant<std::string, std::size_t>;

struct Path {
  std::vector<PathStep> steps;
  std::string text;  // as written, for messages: "nodes.scan.output.findings[0]"
};

// Parses the inside of a placeholder ("context.user['x'][2]"). Throws UserError.
Path parse_path(std::string_view text);

// The roots a placeholder may start with, and what follows them, are checked here, at
// definition time: context.<...>, nodes.<id>.output[.<...>], run.<field>, workflow.<field>.
// Returns the node id for nodes.* references, else "".
std::string check_reference(const Path& path);

// Every placeholder in `value` (recursively through arrays and object values), parsed and
// checked. Throws UserError for malformed templates ("unclosed {{ in ...").
std::vector<Path> placeholders(const json& value);

// The node ids that `value`'s placeholders reference.
std::set<std::string> referenced_nodes(const json& value);

// Looks `path` up in `scope` (an object with context, nodes, run, workflow). Throws
// UserError naming the placeholder and the first step that does not resolve.
const json& resolve(const json& scope, const Path& path);

// Renders every placeholder in `value` against `scope`.
json render(const json& value, const json& scope);

// Renders one template string (the same rules as inside render()).
json render_string(std::string_view text, const json& scope);

}  // namespace orch::templating
