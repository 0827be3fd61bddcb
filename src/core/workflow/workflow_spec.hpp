// Validation of the workflow spec that create_workflow() and update_workflow() take.
//
// Checked here, before anything is written: the shape of every field, node ids (unique,
// valid), depends_on naming nodes that exist, well-formed templates and conditions, and
// template references to nodes that exist. What needs the database or the whole graph in
// SQL is checked there: agents and actions exist in the project, no cycles (a recursive
// CTE with CYCLE), and template references name nodes upstream of the one using them.
#pragma once

#include <nlohmann/json.hpp>

namespace orch::workflow {

inline constexpr std::size_t kMaxNodes = 10000;
inline constexpr int kMaxRetries = 100;

// Returns {name, description, trigger, status, nodes: [{id, agent, action, inputs,
// depends_on, approval_required, retries, retry_backoff_seconds, timeout_seconds, when,
// run_if_skipped, refs}]} where refs lists the nodes the inputs and condition reference.
nlohmann::json normalize_workflow_spec(const nlohmann::json& spec);

// Checks a NATS subject that a trigger subscribes to: dot-separated tokens, no
// whitespace, '*' as a whole token, '>' only as the last token.
bool is_valid_nats_subject(const std::string& subject);

}  // namespace orch::workflow
