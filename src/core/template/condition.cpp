#include "core/template/condition.hpp"

#include <array>
#include <optional>

#include "core/common/json_limits.hpp"
#include "core/common/spec_reader.hpp"
#include "core/common/user_error.hpp"

namespace orch::templating {
namespace {

struct Operand {
  std::optional<Path> path;  // a placeholder
  json literal;              // else a JSON literal
};

struct Condition {
  Operand left;
  std::string op;  // empty: truthiness of left
  Operand right;
};

[[noreturn]] void bad_condition(const std::string& text, const std::string& why) {
  throw UserError("invalid \"when\" condition \"" + text + "\": " + why, {},
                  "Write a placeholder, optionally compared with a value: "
                  "\"{{ nodes.scan.output.count }} > 0\".");
}

std::size_t skip_space(const std::string& text, std::size_t i) {
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  return i;
}

// Reads one operand at `i`: {{ path }} or a JSON literal up to the next space or operator.
Operand read_operand(const std::string& text, std::size_t& i) {
  Operand operand;
  if (text.compare(i, 2, "{{") == 0) {
    std::size_t close = text.find("}}", i + 2);
    if (close == std::string::npos) bad_condition(text, "unclosed {{");
    std::string inside = text.substr(i + 2, close - i - 2);
    std::size_t b = skip_space(inside, 0), e = inside.size();
    while (e > b && std::isspace(static_cast<unsigned char>(inside[e - 1]))) --e;
    operand.path = parse_path(inside.substr(b, e - b));
    check_reference(*operand.path);
    i = close + 2;
    return operand;
  }
  std::size_t start = i;
  if (i < text.size() && text[i] == '"') {
    ++i;
    while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
    if (i >= text.size()) bad_condition(text, "unterminated string");
    ++i;
  } else {
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])) &&
           std::string("=!<>").find(text[i]) == std::string::npos)
      ++i;
  }
  std::string token = text.substr(start, i - start);
  if (token.empty()) bad_condition(text, "an operand is missing");
  try {
    operand.literal = parse_json_limited(token);
  } catch (const UserError& e) {
    if (std::string(e.sqlstate()) == sqlstate::program_limit_exceeded) bad_condition(text, e.what());
    bad_condition(text, "\"" + token + "\" is neither a placeholder nor a JSON value"
                        " (quote strings: \"prod\")");
  }
  return operand;
}

Condition parse_condition(const std::string& text) {
  Condition condition;
  std::size_t i = skip_space(text, 0);
  if (i == text.size()) bad_condition(text, "it is empty");
  condition.left = read_operand(text, i);
  i = skip_space(text, i);
  if (i == text.size()) return condition;
  static const std::array<const char*, 6> ops = {"==", "!=", "<=", ">=", "<", ">"};
  for (const char* op : ops) {
    if (text.compare(i, std::char_traits<char>::length(op), op) == 0) {
      condition.op = op;
      i += condition.op.size();
      break;
    }
  }
  if (condition.op.empty())
    bad_condition(text, "expected one of == != < <= > >= after the first operand");
  i = skip_space(text, i);
  if (i == text.size()) bad_condition(text, "the operand after " + condition.op + " is missing");
  condition.right = read_operand(text, i);
  i = skip_space(text, i);
  if (i != text.size()) bad_condition(text, "unexpected text after the comparison");
  return condition;
}

const json& value_of(const Operand& operand, const json& scope) {
  return operand.path ? resolve(scope, *operand.path) : operand.literal;
}

}  // namespace

bool truthy(const json& value) {
  if (value.is_null()) return false;
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number()) return value.get<double>() != 0;
  // nlohmann's empty() is false for every string, so strings are checked themselves.
  if (value.is_string()) return !value.get_ref<const std::string&>().empty();
  if (value.is_array() || value.is_object()) return !value.empty();
  return true;
}

void check_condition(const json& when) {
  if (when.is_boolean() || when.is_null()) return;
  if (!when.is_string())
    throw UserError(std::string("a \"when\" condition must be a string or a boolean, not ") +
                    json_type_name(when));
  parse_condition(when.get<std::string>());
}

std::set<std::string> condition_nodes(const json& when) {
  std::set<std::string> nodes;
  if (!when.is_string()) return nodes;
  Condition condition = parse_condition(when.get<std::string>());
  for (const Operand* operand : {&condition.left, &condition.right})
    if (operand->path) {
      std::string node = check_reference(*operand->path);
      if (!node.empty()) nodes.insert(node);
    }
  return nodes;
}

bool evaluate_condition(const json& when, const json& scope) {
  if (when.is_null()) return true;
  if (when.is_boolean()) return when.get<bool>();
  const std::string& text = when.get_ref<const std::string&>();
  Condition condition = parse_condition(text);
  const json& left = value_of(condition.left, scope);
  if (condition.op.empty()) return truthy(left);
  const json& right = value_of(condition.right, scope);
  if (condition.op == "==" || condition.op == "!=") {
    // nlohmann's == recurses as deep as both values go: one of them must be within the
    // limit (scope values are, when they were parsed with parse_json_limited).
    if (json_depth(left) > kMaxJsonDepth && json_depth(right) > kMaxJsonDepth)
      throw UserError("\"when\" condition \"" + text + "\" compares values nested deeper than " +
                          std::to_string(kMaxJsonDepth) + " levels",
                      {}, {}, sqlstate::program_limit_exceeded);
    return condition.op == "==" ? left == right : left != right;
  }
  int order;
  if (left.is_number() && right.is_number()) {
    double a = left.get<double>(), b = right.get<double>();
    order = a < b ? -1 : (a > b ? 1 : 0);
  } else if (left.is_string() && right.is_string()) {
    order = left.get_ref<const std::string&>().compare(right.get_ref<const std::string&>());
  } else {
    throw UserError("\"when\" condition \"" + text + "\" compares " + json_type_name(left) +
                    " " + condition.op + " " + json_type_name(right) +
                    "; only two numbers or two strings can be ordered");
  }
  if (condition.op == "<") return order < 0;
  if (condition.op == "<=") return order <= 0;
  if (condition.op == ">") return order > 0;
  return order >= 0;
}

}  // namespace orch::templating
