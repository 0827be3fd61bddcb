// The in-database executor: a RULE agent's function, called with the node's resolved
// input, inside a subtransaction of the scheduler's transaction. Its jsonb result is the
// output; an error it raises (or a timeout) fails the attempt and is rolled back alone.
#pragma once

#include <string>

namespace orch::executors {

struct RuleOutcome {
  bool succeeded = false;
  std::string output;  // jsonb text, when succeeded
  std::string error;   // when not
};

// Runs `function` (regprocedure text, "public.triage(jsonb)") as `role`, with a
// statement timeout of `timeout_seconds`, on `input` (JSON text).
RuleOutcome run_rule(const std::string& function, const std::string& role,
                     const std::string& input, int timeout_seconds);

}  // namespace orch::executors
