#include "scheduler/dispatch.hpp"

#include <chrono>
#include <memory>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "config/gucs.hpp"
#include "core/common/user_error.hpp"
#include "core/schema/json_schema.hpp"
#include "core/template/condition.hpp"
#include "core/template/template.hpp"
#include "executors/rule_executor.hpp"
#include "pg/boundary.hpp"
#include "pg/spi.hpp"
#include "scheduler/wakeup.hpp"

extern "C" {
#include "utils/timestamp.h"
}

namespace orch::scheduler {
namespace {

using nlohmann::json;
using pg::spi_run;
using pg::Value;

// A claimed node, as claim_nodes() returns it.
enum Column {
  kNodeId, kRunId, kProjectId, kNodeKey, kAttempt, kInputs, kCondition, kAgentName, kAction,
  kAgentType, kRuleFunction, kRegisteredBy, kTimeoutSeconds, kScope, kNeedsApproval,
  kCapabilityId, kContractVersion
};

constexpr const char* kClaimSql =
    "SELECT * FROM orchestration.claim_nodes($1::int, $2::int, $3::int, $4::bigint[])";
constexpr const char* kSkipSql = "SELECT orchestration.skip_node($1::bigint, $2)";
constexpr const char* kFailSql = "SELECT orchestration.fail_node($1::bigint, $2)";
constexpr const char* kApprovalSql =
    "SELECT orchestration.request_approval($1::bigint, $2::int, $3::jsonb)";
constexpr const char* kRecordSql =
    "SELECT orchestration.record_attempt($1::bigint, $2::boolean, $3::jsonb, $4::jsonb, $5, "
    "$6::timestamptz, $7::timestamptz, $8::bigint)";
constexpr const char* kExpireSql = "SELECT orchestration.expire_approvals()";
constexpr const char* kNextDueSql =
    "SELECT (extract(epoch FROM orchestration.next_due_at() - clock_timestamp()) * 1000)::bigint";

constexpr const char* kContractSql =
    "SELECT input_schema, output_schema FROM orchestration.agent_capabilities WHERE id = $1::bigint";

constexpr auto kTransactionBudget = std::chrono::milliseconds(50);

// A capability's schemas, compiled once and kept while its row is unchanged.
struct Contract {
  std::string version;
  std::shared_ptr<const schema::Schema> input, output;
  std::string error;  // why the schemas did not compile (they were checked at registration)
};

const Contract& contract_for(const std::string& capability_id, const std::string& version) {
  static std::unordered_map<std::string, Contract> contracts;
  Contract& contract = contracts[capability_id];
  if (contract.version == version && (contract.input || !contract.error.empty())) return contract;
  contract = Contract{version, nullptr, nullptr, {}};
  pg::Rows rows = spi_run(kContractSql, {capability_id});
  try {
    if (rows.size() != 1) throw UserError("capability " + capability_id + " no longer exists");
    contract.input = schema::Schema::compile(json::parse(rows.at(0, 0).value_or("true")));
    contract.output = schema::Schema::compile(json::parse(rows.at(0, 1).value_or("true")));
  } catch (const UserError& e) {
    contract.error = e.what();
  }
  return contract;
}

std::string now_text() {
  return pg::guard([] { return timestamptz_to_str(GetCurrentTimestamp()); });
}

json parse(const Value& value) { return value ? json::parse(*value) : json(nullptr); }

// An output that breaks the capability's output schema fails the attempt (and is
// retried like any failure); the output is kept on the attempt for whoever debugs it.
void check_output(executors::RuleOutcome& outcome, const schema::Schema& output_schema,
                  const std::string& capability) {
  std::vector<schema::Violation> violations;
  try {
    violations = output_schema.validate(json::parse(outcome.output), 5);
  } catch (const UserError& e) {
    violations.push_back({"", e.what()});
  }
  if (violations.empty()) return;
  outcome.succeeded = false;
  outcome.error = "output does not match the output schema of " + capability + ": " +
                  schema::describe(violations);
}

// Moves one claimed node on: skip it (condition false), stop it for an approval, or run
// it. The condition and the input come first, so a node that is skipped never asks
// anyone, and an approver sees the input that will run. Errors in
// the node's own templates or condition fail the node; they are the user's, not the
// scheduler's.
void process_node(const std::vector<Value>& node, std::int64_t round) {
  const std::string& id = *node[kNodeId];
  json scope = parse(node[kScope]);
  json condition = parse(node[kCondition]);

  json input;
  try {
    if (!templating::evaluate_condition(condition, scope)) {
      spi_run(kSkipSql, {id, "condition " + condition.dump() + " is false"});
      return;
    }
    input = templating::render(parse(node[kInputs]), scope);
  } catch (const UserError& e) {
    spi_run(kFailSql, {id, e.what()});
    return;
  }
  // The input must satisfy the capability's input schema before anything runs or anyone
  // is asked: a bad input is the workflow's fault, and retrying would not change it.
  std::string capability = *node[kAgentName] + "." + *node[kAction];
  const Contract& contract = contract_for(*node[kCapabilityId], *node[kContractVersion]);
  if (!contract.error.empty()) {
    spi_run(kFailSql, {id, "the contract of " + capability + " cannot be used: " + contract.error});
    return;
  }
  std::vector<schema::Violation> violations;
  try {
    violations = contract.input->validate(input, 5);
  } catch (const UserError& e) {
    violations.push_back({"", e.what()});
  }
  if (!violations.empty()) {
    spi_run(kFailSql, {id, "input does not match the input schema of " + capability + ": " +
                               schema::describe(violations)});
    return;
  }
  if (*node[kNeedsApproval] == "t") {
    // The approver sees the input exactly as it will be run.
    spi_run(kApprovalSql, {id, std::to_string(config::approval_timeout_seconds), input.dump()});
    return;
  }

  if (*node[kAgentType] != "RULE") {
    spi_run(kFailSql, {id, *node[kAgentType] + " agent \"" + *node[kAgentName] +
                               "\" runs in a container, and this server has no container "
                               "executor yet"});
    return;
  }
  std::string started = now_text();
  executors::RuleOutcome outcome = executors::run_rule(
      *node[kRuleFunction], *node[kRegisteredBy], input.dump(), std::stoi(*node[kTimeoutSeconds]));
  std::string finished = now_text();
  if (outcome.succeeded) check_output(outcome, *contract.output, capability);
  spi_run(kRecordSql, {id, outcome.succeeded ? "true" : "false", input.dump(),
                       outcome.output.empty() ? std::nullopt : Value(outcome.output),
                       outcome.succeeded ? std::nullopt : Value(outcome.error), started,
                       finished, std::to_string(round)});
}

}  // namespace

PassResult run_pass(std::int64_t& round) {
  PassResult result;
  auto deadline = std::chrono::steady_clock::now() + kTransactionBudget;
  spi_run(kExpireSql);
  while (true) {
    int room = config::max_nodes_per_transaction - result.nodes;
    if (room <= 0 || std::chrono::steady_clock::now() >= deadline) {
      result.budget_spent = true;
      break;
    }
    pg::Rows claimed = spi_run(
        kClaimSql, {std::to_string(room), std::to_string(config::max_concurrent_nodes),
                    std::to_string(config::max_concurrent_nodes_per_project),
                    reserved_runs_literal()});
    if (claimed.size() == 0) break;
    ++round;
    for (const auto& node : claimed.rows) process_node(node, round);
    result.nodes += static_cast<int>(claimed.size());
  }
  pg::Rows due = spi_run(kNextDueSql);
  if (due.size() == 1 && due.at(0, 0)) result.next_due_ms = std::max(0L, std::stol(*due.at(0, 0)));
  return result;
}

}  // namespace orch::scheduler
