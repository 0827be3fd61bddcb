#include "core/registry/names.hpp"

#include "core/common/user_error.hpp"

namespace orch::registry {
namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

constexpr std::size_t kIdentifierMax = 63;
constexpr std::size_t kEnvVarMax = 128;

}  // namespace

NameKind name_kind_from_string(std::string_view kind) {
  if (kind == "agent" || kind == "capability" || kind == "workflow") return NameKind::identifier;
  if (kind == "node") return NameKind::node_key;
  if (kind == "secret" || kind == "env") return NameKind::env_var;
  throw UserError("unknown name kind \"" + std::string(kind) + "\"", {},
                  "Use one of agent, capability, workflow, node, secret, env.");
}

std::string name_problem(NameKind kind, std::string_view name) {
  if (name.empty()) return "it is empty";
  if (kind == NameKind::identifier || kind == NameKind::node_key) {
    bool dots = kind == NameKind::identifier;
    if (name.size() > kIdentifierMax)
      return "it is longer than " + std::to_string(kIdentifierMax) + " characters";
    if (!is_alpha(name[0]) && !is_digit(name[0]))
      return "it must start with a letter or a digit";
    for (char c : name)
      if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-' && !(dots && c == '.'))
        return dots ? "it may contain only letters, digits, '_', '-' and '.'"
                    : "it may contain only letters, digits, '_' and '-'";
    return {};
  }
  if (name.size() > kEnvVarMax)
    return "it is longer than " + std::to_string(kEnvVarMax) + " characters";
  if (is_digit(name[0])) return "it must not start with a digit";
  for (char c : name)
    if (!is_alpha(c) && !is_digit(c) && c != '_')
      return "it may contain only letters, digits and '_'";
  return {};
}

void require_valid_name(NameKind kind, std::string_view what, std::string_view name) {
  std::string problem = name_problem(kind, name);
  if (problem.empty()) return;
  std::string hint =
      kind == NameKind::identifier
          ? "Names are 1-63 characters from A-Z, a-z, 0-9, '_', '-' and '.', starting with a "
            "letter or digit."
      : kind == NameKind::node_key
          ? "Node ids are 1-63 characters from A-Z, a-z, 0-9, '_' and '-', starting with a "
            "letter or digit."
          : "Names are 1-128 characters from A-Z, a-z, 0-9 and '_', not starting with a digit.";
  throw UserError("invalid " + std::string(what) + " name \"" + std::string(name) +
                      "\": " + problem,
                  {}, hint);
}

}  // namespace orch::registry
