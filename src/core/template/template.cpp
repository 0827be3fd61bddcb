#include "core/template/template.hpp"

#include "core/common/json_limits.hpp"
#include "core/common/spec_reader.hpp"
#include "core/common/user_error.hpp"

namespace orch::templating {
namespace {

// JSON nesting: deeper input is refused, not recursed over; the same limit as
// parse_json_limited() puts on every document, so that anything it accepted renders.
constexpr std::size_t kMaxDepth = kMaxJsonDepth;

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-';
}

[[noreturn]] void bad_path(std::string_view text, const std::string& why) {
  throw UserError("invalid placeholder {{ " + std::string(text) + " }}: " + why, {},
                  "Placeholders look like {{ context.user.email }}, "
                  "{{ nodes.<id>.output.items[0] }}, {{ run.id }} or {{ workflow.name }}.");
}

std::string trim(std::string_view text) {
  std::size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return std::string(text.substr(begin, end - begin));
}

// A piece of a template string: literal text, or a placeholder's path.
struct Piece {
  bool is_placeholder;
  std::string text;  // literal text, or the placeholder's inside (trimmed)
};

std::vector<Piece> split(std::string_view text) {
  std::vector<Piece> pieces;
  std::string literal;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '\\' && text.substr(i + 1, 2) == "{{") {
      literal += "{{";
      i += 3;
      continue;
    }
    if (text.substr(i, 2) != "{{") {
      literal += text[i++];
      continue;
    }
    std::size_t close = text.find("}}", i + 2);
    if (close == std::string_view::npos) {
      std::string shown(text.substr(i, 40));
      throw UserError("unclosed {{ in template \"" + shown + (text.size() - i > 40 ? "..." : "") +
                          "\"",
                      {}, R"(Close it with }}, or write \{{ for a literal "{{".)");
    }
    if (!literal.empty()) pieces.push_back({false, std::move(literal)});
    literal.clear();
    pieces.push_back({true, trim(text.substr(i + 2, close - i - 2))});
    i = close + 2;
  }
  if (!literal.empty()) pieces.push_back({false, std::move(literal)});
  return pieces;
}

bool has_template_syntax(std::string_view text) {
  return text.find("{{") != std::string_view::npos;
}

// Whether `value`, inside `depth` arrays and objects, takes the input beyond kMaxDepth.
bool too_deep(const json& value, std::size_t depth) {
  return (value.is_array() || value.is_object()) && depth + 1 > kMaxDepth;
}

template <typename Fn>
void for_each_string(const json& value, Fn&& fn, std::size_t depth = 0) {
  if (too_deep(value, depth))
    throw UserError("template input is nested more than " + std::to_string(kMaxDepth) +
                    " levels deep");
  if (value.is_string()) {
    fn(value.get_ref<const std::string&>());
  } else if (value.is_array() || value.is_object()) {
    for (const auto& item : value) for_each_string(item, fn, depth + 1);
  }
}

std::string describe(const json& value) {
  return std::string(json_type_name(value));
}

// `value`, resolved for `path`, is to be placed `depth` levels deep in the result (or, at
// depth 0, printed): copying and printing recurse once per level, and what is rendered is
// stored and read again, so the result must stay within kMaxDepth levels. Scope values
// (node outputs, the run's context) are refused beyond it when they are parsed, but the
// input around a placeholder adds its own levels.
const json& placed(const json& value, const Path& path, std::size_t depth) {
  if (depth + json_depth(value, kMaxDepth + 1 - depth) > kMaxDepth)
    throw UserError("placeholder {{ " + path.text + " }} cannot be rendered: the result would be nested deeper than " +
                        std::to_string(kMaxDepth) + " levels",
                    {}, "Reference a part of the value (such as {{ " + path.text + ".items }}) rather than all of it.",
                    sqlstate::program_limit_exceeded);
  return value;
}

std::string as_text(const json& value, const Path& path) {
  if (value.is_string()) return value.get<std::string>();
  return placed(value, path, 0).dump();
}

json render_string_at(std::string_view text, const json& scope, std::size_t depth) {
  if (!has_template_syntax(text)) return std::string(text);
  std::vector<Piece> pieces = split(text);
  if (pieces.size() == 1 && pieces[0].is_placeholder) {
    Path path = parse_path(pieces[0].text);
    return placed(resolve(scope, path), path, depth);
  }
  std::string out;
  out.reserve(text.size());
  for (const auto& piece : pieces) {
    if (!piece.is_placeholder) {
      out += piece.text;
      continue;
    }
    Path path = parse_path(piece.text);
    out += as_text(resolve(scope, path), path);
  }
  return out;
}

json render_value(const json& value, const json& scope, std::size_t depth) {
  if (too_deep(value, depth))
    throw UserError("template input is nested more than " + std::to_string(kMaxDepth) +
                    " levels deep");
  if (value.is_string()) return render_string_at(value.get_ref<const std::string&>(), scope, depth);
  if (value.is_array()) {
    json out = json::array();
    for (const auto& item : value) out.push_back(render_value(item, scope, depth + 1));
    return out;
  }
  if (value.is_object()) {
    json out = json::object();
    for (auto it = value.begin(); it != value.end(); ++it)
      out[it.key()] = render_value(*it, scope, depth + 1);
    return out;
  }
  return value;
}

}  // namespace

Path parse_path(std::string_view text) {
  Path path;
  path.text = std::string(text);
  if (text.empty()) bad_path(text, "it is empty");
  std::size_t i = 0;
  bool expect_key = true;  // at the start and after a '.'
  while (i < text.size()) {
    char c = text[i];
    if (c == '[') {
      if (expect_key && !path.steps.empty()) bad_path(text, "'.' must be followed by a key");
      std::size_t close = text.find(']', i);
      if (close == std::string_view::npos) bad_path(text, "unclosed '['");
      std::string_view inside = text.substr(i + 1, close - i - 1);
      if (inside.size() >= 2 && (inside.front() == '"' || inside.front() == '\'') &&
          inside.back() == inside.front()) {
        path.steps.emplace_back(std::string(inside.substr(1, inside.size() - 2)));
      } else {
        if (inside.empty()) bad_path(text, "empty []");
        std::size_t index = 0;
        for (char d : inside) {
          if (d < '0' || d > '9')
            bad_path(text, "[" + std::string(inside) + "] is not an array index or a quoted key");
          if (index > 100000000) bad_path(text, "array index too large");
          index = index * 10 + static_cast<std::size_t>(d - '0');
        }
        path.steps.emplace_back(index);
      }
      i = close + 1;
      expect_key = false;
    } else if (c == '.') {
      if (expect_key) bad_path(text, "empty path segment");
      expect_key = true;
      ++i;
    } else if (is_key_char(c)) {
      if (!expect_key) bad_path(text, "missing '.' before \"" + std::string(1, c) + "\"");
      std::size_t start = i;
      while (i < text.size() && is_key_char(text[i])) ++i;
      path.steps.emplace_back(std::string(text.substr(start, i - start)));
      expect_key = false;
    } else {
      bad_path(text, "unexpected character '" + std::string(1, c) + "'");
    }
  }
  if (expect_key) bad_path(text, "it ends with '.'");
  return path;
}

std::string check_reference(const Path& path) {
  const auto* root = std::get_if<std::string>(&path.steps[0]);
  if (!root) bad_path(path.text, "it must start with context, nodes, run or workflow");
  if (*root == "context") return {};
  if (*root == "run" || *root == "workflow") {
    if (path.steps.size() != 2 || !std::holds_alternative<std::string>(path.steps[1]))
      bad_path(path.text, *root + " has fields only, such as " +
                              (*root == "run" ? "run.id" : "workflow.name"));
    const auto& field = std::get<std::string>(path.steps[1]);
    static const std::set<std::string> run_fields = {"id", "trigger", "started_by",
                                                     "traceparent", "project_id"};
    static const std::set<std::string> workflow_fields = {"id", "name", "version"};
    const auto& allowed = *root == "run" ? run_fields : workflow_fields;
    if (!allowed.count(field)) {
      std::string list;
      for (const auto& name : allowed) list += (list.empty() ? "" : ", ") + name;
      bad_path(path.text, *root + " has no field \"" + field + "\" (it has " + list + ")");
    }
    return {};
  }
  if (*root == "nodes") {
    const std::string* node = path.steps.size() > 1 ? std::get_if<std::string>(&path.steps[1])
                                                    : nullptr;
    const std::string* what = path.steps.size() > 2 ? std::get_if<std::string>(&path.steps[2])
                                                    : nullptr;
    if (!node || !what || *what != "output")
      bad_path(path.text, "a node reference reads its output: nodes.<id>.output");
    return *node;
  }
  bad_path(path.text, "unknown root \"" + *root + "\"; use context, nodes, run or workflow");
}

std::vector<Path> placeholders(const json& value) {
  std::vector<Path> found;
  for_each_string(value, [&](const std::string& text) {
    if (!has_template_syntax(text)) return;
    for (const auto& piece : split(text)) {
      if (!piece.is_placeholder) continue;
      Path path = parse_path(piece.text);
      check_reference(path);
      found.push_back(std::move(path));
    }
  });
  return found;
}

std::set<std::string> referenced_nodes(const json& value) {
  std::set<std::string> nodes;
  for (const auto& path : placeholders(value)) {
    std::string node = check_reference(path);
    if (!node.empty()) nodes.insert(node);
  }
  return nodes;
}

const json& resolve(const json& scope, const Path& path) {
  const json* current = &scope;
  std::string where;  // the part of the path resolved so far
  for (std::size_t i = 0; i < path.steps.size(); ++i) {
    const PathStep& step = path.steps[i];
    auto fail = [&](const std::string& why) -> void {
      throw UserError("placeholder {{ " + path.text + " }} does not resolve: " + why);
    };
    if (const auto* key = std::get_if<std::string>(&step)) {
      if (!current->is_object())
        fail(where + " is " + describe(*current) + ", not an object, so it has no key \"" +
             *key + "\"");
      auto it = current->find(*key);
      if (it == current->end()) {
        if (i == 0) fail("unknown root \"" + *key + "\"");
        if (i == 1 && where == "nodes") fail("no output of node \"" + *key + "\" is available");
        fail(where + " has no key \"" + *key + "\"");
      }
      current = &*it;
      where += (where.empty() ? "" : ".") + *key;
    } else {
      std::size_t index = std::get<std::size_t>(step);
      if (!current->is_array())
        fail(where + " is " + describe(*current) + ", not an array, so it has no [" +
             std::to_string(index) + "]");
      if (index >= current->size())
        fail(where + " has " + std::to_string(current->size()) + " elements, so [" +
             std::to_string(index) + "] is out of range");
      current = &(*current)[index];
      where += "[" + std::to_string(index) + "]";
    }
  }
  return *current;
}

json render_string(std::string_view text, const json& scope) { return render_string_at(text, scope, 0); }

json render(const json& value, const json& scope) { return render_value(value, scope, 0); }

}  // namespace orch::templating
