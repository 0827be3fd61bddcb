// Validation of the workflow spec that create_workflow() and update_workflow() take.
//
// Checked here, before anything is written: the shape of every field, node ids (unique,
// valid), depends_on naming nodes that exist, well-formed templates and conditions,
// template references to nodes that exist, and the graph (workflow_graph.hpp): no cycles,
// references only to upstream nodes. What needs the database is checked in SQL: agents
// and actions exist in the project.
#pragma once

#include <nlohmann/json.hpp>

namespace orch::workflow {

inline constexpr std::size_t kMaxNodes = 10000;
inline constexpr int kMaxRetries = 100;

// Returns {name, description, trigger, status, nodes: [{id, agent, action, inputs,
// depends_on, approval_required, retries, retry_backoff_seconds, timeout_seconds, when,
// run_if_skipped, refs, dependents}]} where refs lists the nodes the inputs and
// condition reference and dependents lists the nodes that depend on it. No level: the
// SQL that stores the nodes computes levels (store_workflow_nodes), the only place.
nlohmann::json normalize_workflow_spec(const nlohmann::json& spec);

// Checks a NATS subject that a trigger subscribes to: dot-separated tokens, no
// whitespace, '*' as a whole token, '>' only as the last token.
bool is_valid_nats_subject(const std::string& subject);

}  // namespace orch::workflow
