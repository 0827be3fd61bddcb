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

// Runs `function` (regprocedure text, "public.triage(jsonb)") as `role` (the agent's
// runs_as), with a statement timeout of `timeout_seconds`, on `input` (JSON text).
//
// The call runs the way PostgreSQL runs code on someone's behalf (index expressions,
// REFRESH MATERIALIZED VIEW): as `role`, as a security-restricted operation (no SET ROLE,
// no temporary objects, no LISTEN), inside a GUC nest level that is rolled back after the
// call whether it succeeded or not, so no setting it makes (search_path included)
// reaches the scheduler's next statement; session advisory locks it took are released.
// `role` must be allowed to execute the function.
// `call` describes the attempt to the function, which reads it with orchestration.rule_call()
// (JSON text: capability, agent, run_id, node_key, attempt).
RuleOutcome run_rule(const std::string& function, const std::string& role,
                     const std::string& input, int timeout_seconds, const std::string& call);

// The role a RULE attempt runs as while its function runs in this process, else
// InvalidOid (0). calling_role() answers it, so the API's own checks see the agent's
// role, not the scheduler's.
unsigned int rule_attempt_role();

// What rule_call() answers while a RULE function runs in this process (JSON text), else
// nullptr: which capability of which agent it was called for, in which run and node.
const char* rule_attempt_call();

}  // namespace orch::executors
