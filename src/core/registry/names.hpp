// The one set of naming rules for everything a user names: agents, capabilities,
// workflows, nodes, secrets and environment variables. SQL reaches these rules through
// orchestration.validate_name(), so there is no second copy in PL/pgSQL.
#pragma once

#include <string>
#include <string_view>

namespace orch::registry {

enum class NameKind {
  // Agents, capabilities, workflows, nodes: 1-63 characters from [A-Za-z0-9_.-],
  // starting with a letter or digit. They appear in NATS subjects, container names and
  // labels, where spaces, '*', '>' and '/' would break things.
  identifier,
  // Workflow node ids: like identifiers but without '.', because templates address a
  // node's output with dotted paths ({{ nodes.<id>.output.x }}).
  node_key,
  // Secrets and environment variables: [A-Za-z_][A-Za-z0-9_]*, at most 128 characters,
  // because they become environment variable names inside the container.
  env_var,
};

// Parses "agent", "capability", "workflow" (identifier rules), "node" (node key rules)
// and "secret", "env" (environment variable rules); throws UserError for anything else.
NameKind name_kind_from_string(std::string_view kind);

// Empty when `name` is acceptable, else a sentence saying what is wrong with it.
std::string name_problem(NameKind kind, std::string_view name);

// Throws UserError("invalid <what> name ...") when name_problem() is not empty.
void require_valid_name(NameKind kind, std::string_view what, std::string_view name);

}  // namespace orch::registry
