// Validation of the agent spec that register_agent() and update_agent() take.
//
// The spec is checked here, completely, before anything is written, and returned in a
// normal form with every default filled in, so the SQL side only copies fields into
// columns. What needs the database (does the RULE function exist, is the name taken) is
// checked by the SQL side.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace orch::registry {

// Bounds and defaults of an agent's sandbox limits. The Docker executor applies them;
// GUC ceilings may lower the upper bounds further at run time.
struct LimitRange {
  double min, max, fallback;
};
inline constexpr LimitRange kMemoryMb{6, 65536, 256};
inline constexpr LimitRange kCpus{0.01, 64, 1};
inline constexpr LimitRange kTimeoutSeconds{1, 86400, 300};
inline constexpr LimitRange kPids{1, 32768, 128};

inline constexpr std::size_t kMaxDescription = 4000;
inline constexpr std::size_t kMaxCapabilities = 100;

// Returns the normalized spec:
//   {name, type, version, risk_level, description,
//    image, command, entry_path, env, secrets, limits, allow_network   (container agents)
//    function, limits: {timeout_seconds}                               (RULE agents)
//    capabilities: [{name, description, input_schema, output_schema}]}
// Throws orch::UserError naming the offending field.
nlohmann::json normalize_agent_spec(const nlohmann::json& spec);

}  // namespace orch::registry
