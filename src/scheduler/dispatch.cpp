#include "scheduler/dispatch.hpp"

#include <algorithm>
#include <chrono>
#include <set>
#include <memory>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "config/gucs.hpp"
#include "core/common/array_literal.hpp"
#include "core/common/failure_backoff.hpp"
#include "core/common/json_limits.hpp"
#include "core/common/run_lock_order.hpp"
#include "core/common/secret_mask.hpp"
#include "core/common/text_sanitize.hpp"
#include "core/common/user_error.hpp"
#include "core/docker/container_config.hpp"
#include "core/schema/json_schema.hpp"
#include "core/template/condition.hpp"
#include "core/template/template.hpp"
#include "executors/rule_executor.hpp"
#include "pg/boundary.hpp"
#include "pg/extension_version.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"
#include "scheduler/crash_marker.hpp"
#include "workers/wakeup.hpp"
#include "workers/worker_main.hpp"

extern "C" {
#include "miscadmin.h"
#include "access/xlog.h"
#include "utils/timestamp.h"
}

namespace orch::scheduler {
namespace {

using nlohmann::json;
using pg::spi_run;
using pg::Value;

// A claimed node, as orchestration.claim_nodes() returns it (read by column name).
struct ClaimedNode {
  std::string id;  // the node's id, as text: most uses pass it on to SQL
  std::int64_t run_id = 0;
  std::string project_id;
  std::string node_key;
  int attempt = 0;                  // attempts made so far
  Value inputs, condition, scope;   // jsonb texts; scope NULL: the node uses no placeholders
  Value agent_name;                 // NULL: the agent was deleted after the run started
  std::string action;
  Value agent_type;                 // RULE, SCRIPT, ...
  Value rule_function, runs_as;
  int timeout_seconds = 0;
  bool needs_approval = false;
  Value capability_id;              // NULL: the capability was removed after the run started
  Value contract_version;
  Value agent;                      // agent_json of a container agent
  bool rule() const { return agent_type && *agent_type == "RULE"; }
};

// function: the one whose rows these are (claim_nodes, or record_attempts handing off).
std::vector<ClaimedNode> claimed_nodes(const pg::Rows& rows, const char* function = "claim_nodes") {
  pg::RowReader r(rows, function);
  std::vector<ClaimedNode> nodes(r.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    ClaimedNode& n = nodes[i];
    n.id = r.text(i, "node_id");
    n.run_id = r.int64(i, "run_id");
    n.project_id = r.text(i, "project_id");
    n.node_key = r.text(i, "node_key");
    n.attempt = r.int32(i, "attempt");
    n.inputs = r.value(i, "inputs");
    n.condition = r.value(i, "condition");
    n.scope = r.value(i, "scope");
    n.agent_name = r.value(i, "agent_name");
    n.action = r.text(i, "action");
    n.agent_type = r.value(i, "agent_type");
    n.rule_function = r.value(i, "rule_function");
    n.runs_as = r.value(i, "runs_as");
    n.timeout_seconds = r.value(i, "timeout_seconds") ? r.int32(i, "timeout_seconds") : 0;
    n.needs_approval = r.boolean(i, "needs_approval");
    n.capability_id = r.value(i, "capability_id");
    n.contract_version = r.value(i, "contract_version");
    n.agent = r.value(i, "agent");
  }
  return nodes;
}

constexpr const char* kClaimSql =
    "SELECT * FROM orchestration.claim_nodes($1::int, $2::int, $3::int, $4::bigint[], $5, $6::int[], $7::int, "
    "$8::bigint[])";
constexpr const char* kSkipSql = "SELECT orchestration.skip_node($1::bigint, $2)";
constexpr const char* kFailSql = "SELECT orchestration.fail_node($1::bigint, $2)";
// Locks the node's run for writing; false (the node skipped) if the run has ended.
constexpr const char* kLiveRunSql = "SELECT orchestration.lock_live_run_of($1::bigint)";
// Locks runs for writing, in id order (the lock order across runs, 70_runs.sql).
constexpr const char* kLockRunsSql = "SELECT orchestration.lock_runs($1::bigint[])";
// A RULE agent's runs_as role still vouches for it (checked before every attempt).
constexpr const char* kMayRunAsSql = "SELECT orchestration.may_run_as($1::name, $2::integer)";
constexpr const char* kApprovalSql =
    "SELECT orchestration.request_approval($1::bigint, $2::int, $3::jsonb)";
// With $12 (hand_off), its rows are the RULE nodes the recorded successes made runnable,
// as claim_nodes returns them.
constexpr const char* kRecordSql =
    "SELECT * FROM orchestration.record_attempts($1::bigint[], $2::boolean[], $3::jsonb[], $4::jsonb[], "
    "$5::text[], $6::timestamptz[], $7::timestamptz[], $8::bigint, $9::int[], $10::text[], $11::text[], "
    "$12::boolean)";
constexpr const char* kExpireSql = "SELECT orchestration.expire_approvals()";
constexpr const char* kNextDueSql =
    "SELECT (extract(epoch FROM orchestration.next_due_at() - clock_timestamp()) * 1000)::bigint";

constexpr const char* kSecretsSql = "SELECT * FROM orchestration.project_secrets($1::int, $2::text[])";
constexpr const char* kStartContainerSql =
    "SELECT orchestration.start_container_node($1::bigint, $2::jsonb, $3)";
// Of these nodes, those whose results can be written now (never waiting on anyone's lock).
constexpr const char* kWritableSql = "SELECT * FROM orchestration.writable_nodes($1::bigint[])";
constexpr const char* kNoteCrashSql = "SELECT orchestration.note_crash($1::bigint)";
constexpr const char* kRequeueSql = "SELECT orchestration.requeue_node($1::bigint, $2)";
constexpr const char* kRunningContainersSql = "SELECT * FROM orchestration.running_containers()";
constexpr const char* kCancelledSql = "SELECT * FROM orchestration.cancelled_nodes($1::bigint[])";
constexpr const char* kContractSql = "SELECT * FROM orchestration.capability_contract($1::bigint)";

constexpr auto kTransactionBudget = std::chrono::milliseconds(50);
// How soon a worker looks again at a due node its pass passed over (run_pass).
constexpr long kPassedOverMs = 250;

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
  pg::RowReader schemas(rows, "capability_contract");
  try {
    if (schemas.size() != 1) throw UserError("capability " + capability_id + " no longer exists");
    // The registered schemas they use: those cannot change while a capability uses them
    // (register_schema refuses), so the row version alone still says when to recompile.
    schema::Documents documents;
    json used = parse_json_limited(schemas.value(0, "documents").value_or("{}"));
    for (auto it = used.begin(); used.is_object() && it != used.end(); ++it) documents.emplace(it.key(), *it);
    schema::CompileOptions options;
    options.documents = &documents;
    contract.input = schema::Schema::compile(parse_json_limited(schemas.value(0, "input_schema").value_or("true")), options);
    contract.output = schema::Schema::compile(parse_json_limited(schemas.value(0, "output_schema").value_or("true")), options);
  } catch (const UserError& e) {
    contract.error = e.what();
  }
  return contract;
}

// The cluster's identity (its system identifier), in every container's name and labels:
// clusters sharing a Docker engine, even with the same database names, never adopt or
// remove each other's containers.
const std::string& cluster_id() {
  static const std::string id = std::to_string(pg::guard([] { return GetSystemIdentifier(); }));
  return id;
}

std::string now_text() {
  return pg::guard([] { return timestamptz_to_str(GetCurrentTimestamp()); });
}

// Of these nodes, those whose results can be written now (kWritableSql).
std::set<std::int64_t> writable_now(const std::vector<std::int64_t>& nodes) {
  std::set<std::int64_t> writable;
  pg::Rows rows = spi_run(kWritableSql, {array_literal(nodes)});
  pg::RowReader r(rows, "writable_nodes");
  for (std::size_t i = 0; i < r.size(); ++i) writable.insert(r.int64(i, "node_id"));
  return writable;
}

// A project's secrets of these names (a Postgres text[] literal), by name.
std::map<std::string, std::string> project_secrets(const std::string& project_id, const std::string& names) {
  pg::Rows rows = spi_run(kSecretsSql, {project_id, names});
  pg::RowReader r(rows, "project_secrets");
  std::map<std::string, std::string> secrets;
  for (std::size_t i = 0; i < r.size(); ++i) secrets[r.text(i, "name")] = r.text(i, "value");
  return secrets;
}

// User data (contexts, inputs, outputs) is parsed with the nesting limit: a document
// deeper than that fails its node instead of overflowing the scheduler's stack.
json parse(const Value& value) { return value ? parse_json_limited(*value) : json(nullptr); }

// An output that breaks the capability's output schema fails the attempt (and is
// retried like any failure); the output is kept on the attempt for whoever debugs it.
// `secrets` (a container's) are masked in the output kept, whether it passed or not,
// after it was checked as printed.
void check_output(executors::RuleOutcome& outcome, const schema::Schema* output_schema,
                  const std::string& capability, const std::vector<std::string>& secrets = {}) {
  json output;
  try {
    output = parse_json_limited(outcome.output);
    check_storable_in_jsonb(output);
  } catch (const UserError& e) {
    outcome.succeeded = false;
    outcome.error = std::string("its output cannot be stored: ") + e.what();
    outcome.output.clear();  // not even on the attempt's row: it cannot hold it
    return;
  }
  std::vector<schema::Violation> violations;
  try {
    if (output_schema) violations = output_schema->validate(output, 5);
  } catch (const UserError& e) {
    violations.push_back({"", e.what()});
  }
  if (!secrets.empty()) {
    mask_secrets(output, secrets);
    outcome.output = output.dump();
  }
  if (violations.empty()) return;
  outcome.succeeded = false;
  outcome.error = "output does not match the output schema of " + capability + ": " +
                  schema::describe(violations);
}

docker::EngineAddress engine_address() {
  return docker::EngineAddress{config::docker_host ? config::docker_host : "", config::docker_tls_ca,
                               config::docker_tls_cert, config::docker_tls_key};
}

docker::AttemptLimits attempt_limits(int timeout_seconds) {
  return docker::AttemptLimits{timeout_seconds, static_cast<std::size_t>(config::max_output_bytes),
                               static_cast<std::size_t>(config::max_log_bytes)};
}

docker::Ceilings ceilings() {
  return docker::Ceilings{config::container_max_memory_mb, config::container_max_cpus,
                          config::container_max_pids, config::container_allow_network};
}

// What a container attempt is made of, as the caller read it from the node's row: a
// claimed node's for a new attempt (prepare_container), a RUNNING node's for one adopted
// after a crash (containers_to_adopt).
struct ContainerFacts {
  std::int64_t project_id = 0, run_id = 0, node_id = 0;
  std::string node_key;
  int attempt = 0;  // this attempt's number: 1 for the first
  int timeout_seconds = 0;
  std::int64_t memory_mb = 0, pids = 0;
  std::string input, started_at;  // started_at: timestamptz text
  std::string capability_id, contract_version, capability;
  std::map<std::string, std::string> secrets;  // the agent's, by name
  // A new attempt: the agent's spec (image, entry_path, command, env, cpus,
  // allow_network). Adopted: null, and the name of the container it already made.
  const json* agent = nullptr;
  std::string adopt_name;
};

// The one place a ContainerJob is made, for both kinds of attempt.
executors::ContainerJob container_job(const std::string& database, ContainerFacts facts) {
  executors::ContainerJob job;
  job.node_id = facts.node_id;
  job.adopt = !facts.adopt_name.empty();
  job.adopt_name = std::move(facts.adopt_name);
  job.request.id = {database, facts.project_id, facts.run_id, facts.node_id, facts.node_key, facts.attempt,
                    cluster_id()};
  job.request.memory_mb = facts.memory_mb;
  job.request.pids = facts.pids;
  job.request.secrets = std::move(facts.secrets);
  if (facts.agent) {
    const json& agent = *facts.agent;
    job.request.image = agent.value("image", "");
    if (agent.contains("entry_path")) job.request.entry_path = agent["entry_path"].get<std::string>();
    job.request.command = agent.value("command", std::vector<std::string>{});
    job.request.env = agent.value("env", std::map<std::string, std::string>{});
    job.request.cpus = agent.at("limits").value("cpus", 1.0);
    job.request.allow_network = agent.value("allow_network", false);
  }
  job.ceilings = ceilings();
  job.limits = attempt_limits(facts.timeout_seconds);
  job.address = engine_address();
  job.input = std::move(facts.input);
  job.started_at = std::move(facts.started_at);
  job.capability_id = std::move(facts.capability_id);
  job.contract_version = std::move(facts.contract_version);
  job.capability = std::move(facts.capability);
  return job;
}

// Outcomes of attempts, recorded by one record_attempts call: a claim round's RULE nodes,
// or the containers that finished since the last pass. Per round, one statement per step
// instead of one per node is most of the scheduler's throughput.
//
// A result that cannot be stored (a string jsonb cannot hold, say) must fail its own node
// and nothing else. Outputs and texts are checked before (check_output, sanitize_text),
// so the batch is written directly: a subtransaction per round that writes would cost an
// XID each, and past 64 of them in one transaction every snapshot overflows. Should a
// write fail all the same, the pass is rolled back and the next one is careful: it writes
// each batch in a subtransaction and, if that fails, finds the attempts whose results
// cannot be stored and records them as failures that say why, with the rest of the batch.
bool careful_recording = false;

class Attempts {
 public:
  struct Attempt {
    std::int64_t node_id;
    bool succeeded;
    std::string input, output, error, started_at, finished_at;
    int exit_code = -1;
    std::string log_tail, container_id;
  };

  bool empty() const { return attempts_.empty(); }

  void add(Attempt attempt) {
    // Text that reaches a table or an event is valid UTF-8 without NUL, whatever the
    // agent printed or the error quoted.
    attempt.error = sanitize_text(attempt.error);
    attempt.log_tail = sanitize_text(attempt.log_tail);
    attempts_.push_back(std::move(attempt));
  }

  // round: the claim round of RULE nodes (nullopt for containers). hand_off: return the
  // RULE nodes the recorded successes made runnable, claimed (record_attempts says when
  // a worker may go on with them).
  std::vector<ClaimedNode> record(const Value& round, bool hand_off = false) {
    std::vector<ClaimedNode> handed;
    if (attempts_.empty()) return handed;
    std::vector<Attempt> batch;
    batch.swap(attempts_);
    if (!careful_recording) {
      write(batch.begin(), batch.end(), round, hand_off, &handed);
      return handed;
    }
    if (!pg::try_subtransaction([&] { write(batch.begin(), batch.end(), round, hand_off, &handed); }))
      return handed;
    handed.clear();
    // Which results cannot be stored: each is written alone, in claim order, inside a
    // probe that is then undone, and one refused becomes a failure that says why. Then
    // the batch is written as one, so that the others are recorded as they would have
    // been (a success claimed after the refused node is still a success).
    {
      pg::Subtransaction probe;
      for (auto& attempt : batch) {
        auto refused = pg::try_subtransaction([&] { write(&attempt, &attempt + 1, round, false, nullptr); });
        if (!refused) continue;
        attempt.succeeded = false;
        attempt.output.clear();
        attempt.error = sanitize_text("its result could not be stored: " + refused->message);
      }
      probe.rollback();
    }
    if (auto refused =
            pg::try_subtransaction([&] { write(batch.begin(), batch.end(), round, hand_off, &handed); })) {
      // The nodes stay as they are; a later pass meets them again.
      pg::log_worker_error("pg_orchestration", UserError("results could not be stored: " + refused->message));
      handed.clear();
    }
    return handed;
  }

 private:
  // handed: where the nodes handed off go (nullptr: a write to be undone).
  template <typename It>
  static void write(It first, It last, const Value& round, bool hand_off, std::vector<ClaimedNode>* handed) {
    auto unless_empty = [](const std::string& text) { return text.empty() ? std::nullopt : Value(text); };
    ArrayLiteral node_ids, succeeded, inputs, outputs, errors, started, finished, exit_codes, log_tails,
        container_ids;
    for (It a = first; a != last; ++a) {
      node_ids.add(a->node_id);
      succeeded.add(Value(a->succeeded ? "t" : "f"));
      inputs.add(a->input);
      outputs.add(unless_empty(a->output));
      errors.add(a->succeeded ? std::nullopt : Value(a->error));
      started.add(a->started_at);
      finished.add(a->finished_at);
      exit_codes.add(a->exit_code >= 0 ? Value(std::to_string(a->exit_code)) : std::nullopt);
      log_tails.add(unless_empty(a->log_tail));
      container_ids.add(unless_empty(a->container_id));
    }
    pg::Rows rows = spi_run(kRecordSql, {node_ids.str(), succeeded.str(), inputs.str(), outputs.str(), errors.str(),
                                         started.str(), finished.str(), round, exit_codes.str(), log_tails.str(),
                                         container_ids.str(), Value(hand_off && handed ? "t" : "f")});
    if (handed) *handed = claimed_nodes(rows, "record_attempts");
  }

  std::vector<Attempt> attempts_;
};

// A claim round: the nodes one claim_nodes call took, and what moving them on gathers.
// Its number is agent_runs.scheduler_round (rule_pool::next_round); the functions that
// take one call it `round`.
struct ClaimRound {
  std::int64_t number;
  const std::string& database;
  std::vector<executors::ContainerJob>& launches;
  // The round's RULE outcomes so far. Recorded before any other write of the round (a
  // skip, a failure, an approval, a container start), so every effect lands in claim
  // order, as if each node had been recorded at once.
  Attempts attempts;
  // Runs an outcome of this round may have failed (a failed attempt, a node failed), in
  // whose nodes it has yet to start a run: those start only if the run is still live.
  std::set<std::int64_t> maybe_failed;
  // The runs a RULE worker's round takes before its first write, in id order, when it
  // has nodes of several runs it does not hold yet (RunLockOrder); empty once taken.
  std::vector<std::int64_t> runs_to_lock;

  // Writes the outcomes gathered so far; from the round's last write, returns the RULE
  // nodes they made runnable, claimed, when hand_off.
  std::vector<ClaimedNode> record(bool hand_off = false) {
    if (attempts.empty()) return {};
    lock_runs();
    return attempts.record(std::to_string(number), hand_off);
  }
  // Runs a write that is not a RULE outcome, after the outcomes gathered so far.
  pg::Rows write(const char* sql, const std::vector<Value>& params) {
    lock_runs();
    record();
    return spi_run(sql, params);
  }
  // Fails the node for good (and so its run).
  void fail(const ClaimedNode& node, const std::string& error) {
    write(kFailSql, {node.id, error});
    maybe_failed.insert(node.run_id);
  }
  // Whether the node may start: after its run may have failed in this round, asked under
  // the run's lock once the outcomes so far are recorded (a run that failed skips it).
  bool may_start(const ClaimedNode& node) {
    if (!maybe_failed.count(node.run_id)) return true;
    pg::Rows rows = write(kLiveRunSql, {node.id});
    if (pg::RowReader(rows, "lock_live_run_of").boolean(0, "lock_live_run_of")) {
      maybe_failed.erase(node.run_id);  // its failures so far were retries
      return true;
    }
    return false;
  }

 private:
  void lock_runs() {
    if (runs_to_lock.empty()) return;
    spi_run(kLockRunsSql, {array_literal(runs_to_lock)});
    runs_to_lock.clear();
  }
};

// A RULE worker's round in the lock order across runs (run_lock_order.hpp): leaves out
// the nodes of runs it must not wait for (PENDING for its next transaction) and has the
// round take its new runs in id order before its first write. Returns whether it left any.
bool keep_lock_order(const RunLockOrder& order, std::vector<ClaimedNode>& claimed, ClaimRound& round) {
  std::vector<std::int64_t> runs;
  for (const auto& node : claimed) runs.push_back(node.run_id);
  RunLockOrder::Round plan = order.plan(runs);
  std::vector<ClaimedNode> kept;
  for (std::size_t i = 0; i < claimed.size(); ++i)
    if (plan.keep[i]) kept.push_back(std::move(claimed[i]));
  claimed.swap(kept);
  round.runs_to_lock = std::move(plan.lock);
  return plan.left_any();
}

// A container node: refused before anything is created if its image is not allowed or a
// secret it needs is not set; else RUNNING in this transaction, launched after commit.
void prepare_container(const ClaimedNode& node, const json& input, const std::string& capability,
                       ClaimRound& round) {
  const std::string& id = node.id;
  json agent = parse(node.agent);
  std::string image = agent.value("image", "");
  std::string patterns = config::allowed_images ? config::allowed_images : "";
  if (!docker::image_allowed(image, patterns)) {
    round.fail(node, "image \"" + image + "\" is not allowed by orchestration.allowed_images (\"" + patterns +
                               "\"); no container was created");
    return;
  }
  std::map<std::string, std::string> secrets;
  std::vector<std::string> wanted = agent.value("secrets", std::vector<std::string>{});
  if (!wanted.empty()) {
    std::string names = "{";
    for (const auto& name : wanted) names += (names.size() > 1 ? "," : "") + json(name).dump();
    secrets = project_secrets(node.project_id, names + "}");
    for (const auto& name : wanted)
      if (!secrets.count(name)) {
        round.fail(node, "secret \"" + name + "\" is not set in project " + node.project_id +
                                   "; set it with orchestration.set_secret()");
        return;
      }
  }
  ContainerFacts facts;
  facts.project_id = std::stoll(node.project_id);
  facts.run_id = node.run_id;
  facts.node_id = std::stoll(id);
  facts.node_key = node.node_key;
  facts.attempt = node.attempt + 1;
  facts.timeout_seconds = node.timeout_seconds;
  const json& limits = agent["limits"];
  facts.memory_mb = limits.value("memory_mb", 256);
  facts.pids = limits.value("pids", 128);
  facts.input = input.dump();
  facts.started_at = now_text();
  facts.capability_id = *node.capability_id;
  facts.contract_version = node.contract_version.value_or("");
  facts.capability = capability;
  facts.secrets = std::move(secrets);
  facts.agent = &agent;
  executors::ContainerJob job = container_job(round.database, std::move(facts));
  // The attempt is a span of its own in the run's trace; the container gets it as TRACEPARENT.
  pg::Rows started = round.write(kStartContainerSql, {id, job.input, docker::container_name(job.request.id)});
  // NULL: an outcome recorded before it in this round ended the run; nothing starts.
  if (!started.at(0, 0)) return;
  job.request.traceparent = *started.at(0, 0);
  round.launches.push_back(std::move(job));
}

// Moves one claimed node on: skip it (condition false), stop it for an approval, or run
// it. The condition and the input come first, so a node that is skipped never asks
// anyone, and an approver sees the input that will run. Errors in
// the node's own templates or condition fail the node; they are the user's, not the
// scheduler's.
// may_run_as, asked once per role and project in a pass (one transaction, at most
// max_nodes_per_transaction nodes): the SQL call costs ~0.15 ms (its fixed search_path
// opens a GUC nest level), about a tenth of a chain node. A grant revoked during a pass
// counts from the next one.
std::unordered_map<std::string, bool> may_run_as_answers;

bool may_run_as(const std::string& role, const std::string& project) {
  std::string key = role + '\0' + project;
  auto known = may_run_as_answers.find(key);
  if (known != may_run_as_answers.end()) return known->second;
  pg::Rows allowed = spi_run(kMayRunAsSql, {role, project});
  bool answer = allowed.size() == 1 && allowed.at(0, 0) && *allowed.at(0, 0) == "t";
  may_run_as_answers.emplace(std::move(key), answer);
  return answer;
}

void process_node(const ClaimedNode& node, ClaimRound& round) {
  const std::string& id = node.id;
  if (!round.may_start(node)) return;
  // The run keeps the nodes it started with; their agent may have changed since.
  if (!node.agent_name) {
    round.fail(node, "its agent was deleted after the run started");
    return;
  }
  if (!node.capability_id) {
    round.fail(node, "agent \"" + *node.agent_name + "\" has no capability \"" + node.action +
                               "\" any more (it was removed after the run started)");
    return;
  }
  json scope, condition, input;
  try {
    scope = parse(node.scope);
    condition = parse(node.condition);
    if (!templating::evaluate_condition(condition, scope)) {
      round.write(kSkipSql, {id, "condition " + condition.dump() + " is false"});
      return;
    }
    input = templating::render(parse(node.inputs), scope);
  } catch (const UserError& e) {
    round.fail(node, e.what());
    return;
  }
  // The input must satisfy the capability's input schema before anything runs or anyone
  // is asked: a bad input is the workflow's fault, and retrying would not change it.
  std::string capability = *node.agent_name + "." + node.action;
  const Contract& contract = contract_for(*node.capability_id, node.contract_version.value_or(""));
  if (!contract.error.empty()) {
    round.fail(node, "the contract of " + capability + " cannot be used: " + contract.error);
    return;
  }
  std::vector<schema::Violation> violations;
  try {
    violations = contract.input->validate(input, 5);
  } catch (const UserError& e) {
    violations.push_back({"", e.what()});
  }
  if (!violations.empty()) {
    round.fail(node, "input does not match the input schema of " + capability + ": " +
                               schema::describe(violations));
    return;
  }
  if (node.needs_approval) {
    // The approver sees the input exactly as it will be run.
    round.write(kApprovalSql, {id, std::to_string(config::approval_timeout_seconds), input.dump()});
    return;
  }

  if (!node.rule()) {
    prepare_container(node, input, capability, round);
    return;
  }
  std::string started = now_text();
  executors::RuleOutcome outcome;
  if (!node.runs_as || !may_run_as(*node.runs_as, node.project_id)) {
    outcome.error = "role \"" + node.runs_as.value_or("") + "\", which the agent runs as, no longer has project " +
                    node.project_id +
                    " as an orchestration_admin; its function was not run (an admin of the project sets the agent "
                    "again: update_agent or put_agent)";
  } else {
    int timeout_seconds = node.timeout_seconds;
    rule_pool::attempt_started(std::stoll(id), node.run_id, timeout_seconds);
    // What rule_call() tells the function: the capability it was called for, and where.
    nlohmann::json call = {{"capability", node.action}, {"agent", *node.agent_name}, {"run_id", node.run_id},
                           {"node_key", node.node_key}, {"attempt", node.attempt + 1}};
    outcome = executors::run_rule(node.rule_function.value_or(""), *node.runs_as, input.dump(), timeout_seconds,
                                  call.dump());
    // Stopped by the scheduler, which records the attempt as timed out: this transaction
    // must not record it too (the SIGTERM ends the process soon).
    if (!rule_pool::attempt_ended())
      throw std::runtime_error("node " + id + " ran past its timeout; this worker was stopped");
  }
  std::string finished = now_text();
  if (outcome.succeeded) check_output(outcome, contract.output.get(), capability);
  // A failure may have failed the run (unless a retry is left); so may a success recorded
  // carefully, which fails if its output cannot be stored.
  if (!outcome.succeeded || careful_recording) round.maybe_failed.insert(node.run_id);
  round.attempts.add({std::stoll(id), outcome.succeeded, input.dump(), outcome.output, outcome.error, started,
                      finished});
}

}  // namespace

PassResult run_pass(std::int64_t& round, const std::string& database, int slot, Claiming claiming,
                    const std::vector<std::int64_t>& finished) {
  PassResult result;
  may_run_as_answers.clear();  // grants may have changed since the last pass
  auto started = std::chrono::steady_clock::now();
  auto deadline = started + kTransactionBudget;
  if (claiming != Claiming::rule_nodes) spi_run(kExpireSql);
  std::optional<int> project;  // a RULE worker's, once its first claim chose it
  // The RULE nodes the last claim round's results made runnable, handed off by
  // record_attempts: a chain's next step, taken without a look at the queue.
  std::vector<ClaimedNode> handed;
  RunLockOrder run_locks;  // a RULE worker's: the scheduler takes its runs at its claim
  const char* kinds[] = {"any", "container", "rule"};
  while (true) {
    int room = config::max_nodes_per_transaction - result.nodes;
    if (room <= 0 || std::chrono::steady_clock::now() >= deadline) {
      result.budget_spent = true;
      break;
    }
    // Runs others are about to lock, and runs of stopped attempts not yet recorded.
    std::vector<std::int64_t> reserved = workers::reserved_runs();
    for (std::int64_t run : rule_pool::held_runs(slot)) reserved.push_back(run);
    // Handed-off nodes of those runs, and those past the room, are left PENDING: runnable
    // by anyone once this transaction commits.
    std::vector<ClaimedNode> claimed;
    for (auto& node : handed)
      if (static_cast<int>(claimed.size()) < room &&
          std::find(reserved.begin(), reserved.end(), node.run_id) == reserved.end())
        claimed.push_back(std::move(node));
    handed.clear();
    if (claimed.empty()) {
      bool choosing = claiming == Claiming::rule_nodes && !project;
      rule_pool::AtCap at_cap = choosing ? rule_pool::projects_at_cap() : rule_pool::AtCap{"{}", {}};
      claimed = claimed_nodes(spi_run(
          kClaimSql, {std::to_string(room), std::to_string(config::max_concurrent_nodes),
                      std::to_string(config::max_concurrent_nodes_per_project), array_literal(reserved),
                      kinds[static_cast<int>(claiming)], at_cap.projects,
                      project ? Value(std::to_string(*project)) : std::nullopt, array_literal(finished)}));
      if (claimed.empty()) {
        // This worker may have been woken for a node of a project it left alone (others
        // hold it up to the cap), by a commit that found those others busy at the end of
        // their pass, which they will not look at again: it tells them to (those that held
        // it when the claim began, which may have let it go since).
        for (int index : at_cap.workers) workers::wake_rule_worker(index);
        break;
      }
      if (choosing) {
        project = std::stoi(claimed.front().project_id);
        if (!rule_pool::hold_project(*project)) throw ProjectTaken();
      }
      // A full claim means more runnable RULE nodes wait, perhaps of this very run: another
      // RULE worker claims them now, beside this one (its claim passes over the nodes this
      // transaction holds), rather than after this transaction commits. (It fills the
      // pass's room: this pass claims no more.)
      if (claiming == Claiming::rule_nodes && static_cast<int>(claimed.size()) == room)
        workers::wake_now(workers::Worker::rule);
    }
    ClaimRound claim{rule_pool::next_round(slot, round), database, result.launches, {}};
    int moved = 0;
    // Nodes left PENDING for the next transaction (it goes on at once).
    bool set_apart = false;
    if (claiming == Claiming::rule_nodes) set_apart = keep_lock_order(run_locks, claimed, claim);
    for (const auto& node : claimed) {
      // A RULE node tried before (it failed, maybe ran past its timeout and had its worker
      // stopped, which rolls back the whole transaction) runs first in a transaction of
      // its own: what was done before it in this one is committed first, not lost with it.
      bool tried_rule = node.rule() && node.attempt != 0;
      if (claiming != Claiming::containers && tried_rule && result.nodes + moved > 0) {
        set_apart = true;  // it and the rest stay PENDING, for the next transaction
        break;
      }
      crash_marker::working_on(std::stoll(node.id));
      process_node(node, claim);
      crash_marker::working_on(0);
      ++moved;
    }
    // Only the round's last write hands off: a write after it (a skip, a failure) could
    // have ended the run of the nodes it handed off.
    handed = claim.record(claiming != Claiming::containers);
    if (claiming == Claiming::rule_nodes) {
      std::vector<std::int64_t> moved_runs;
      for (int i = 0; i < moved; ++i) moved_runs.push_back(claimed[static_cast<std::size_t>(i)].run_id);
      run_locks.moved(moved_runs, careful_recording);
    }
    result.nodes += moved;
    // A RULE worker whose claim took every runnable node there was and got none handed off
    // is done: a claim now would find nothing it did not make runnable itself, and what it
    // made runnable, it looks at after its commit (must_look_again). What others made
    // runnable meanwhile woke a sleeping worker, or told this one to look again.
    if (claiming == Claiming::rule_nodes && handed.empty() && static_cast<int>(claimed.size()) < room && !set_apart)
      break;
    if (set_apart) {
      result.budget_spent = true;  // go on at once
      break;
    }
  }
  result.project = project.value_or(0);
  pg::Rows due = spi_run(kNextDueSql);
  if (due.size() == 1 && due.at(0, 0)) {
    long due_ms = std::stol(*due.at(0, 0));  // below 0: due already
    long pass_ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
    // Due before this pass began, and the pass took nothing: its claim passed over the
    // node, which is someone else's for now (a retry another worker runs, a project at its
    // cap, a container the limits hold back, a RULE node the scheduler leaves to the RULE
    // workers). A due time of 0 would make this worker spin until then; it looks again a
    // little later instead (what frees the node usually wakes a worker, not always: a
    // lock let go, say), and then sees the due times behind that one, too.
    bool passed_over = result.nodes == 0 && due_ms < -pass_ms;
    result.next_due_ms = passed_over ? kPassedOverMs : std::max(0L, due_ms);
  }
  return result;
}

std::vector<executors::FinishedJob> record_containers(std::vector<executors::FinishedJob>& finished) {
  // A result someone else's lock holds up (an API call in an open transaction) is not
  // waited for: it waits for a later pass, and the scheduler goes on with everyone else's.
  std::vector<executors::FinishedJob> deferred;
  if (finished.empty()) return deferred;
  std::vector<std::int64_t> nodes;
  for (const auto& done : finished) nodes.push_back(done.job.node_id);
  std::set<std::int64_t> writable = writable_now(nodes);
  std::vector<executors::FinishedJob> now;
  for (auto& done : finished) (writable.count(done.job.node_id) ? now : deferred).push_back(std::move(done));
  finished.swap(now);

  Attempts attempts;
  for (auto& done : finished) {
    executors::ContainerJob& job = done.job;
    docker::AttemptOutcome& outcome = done.outcome;
    if (outcome.lost) {  // nothing ran: run it again, without using up a retry
      spi_run(kRequeueSql, {std::to_string(job.node_id), outcome.error});
      continue;
    }
    crash_marker::working_on(job.node_id);
    // A container that prints its environment must not put its secrets into stored logs,
    // errors, outputs or events: every secret value it was given is masked.
    std::vector<std::string> secret_values;
    for (const auto& [name, value] : job.request.secrets) secret_values.push_back(value);
    if (outcome.succeeded) {
      const Contract& contract = contract_for(job.capability_id, job.contract_version);
      executors::RuleOutcome checked{true, outcome.output, {}};
      check_output(checked, contract.output.get(), job.capability, secret_values);
      outcome.succeeded = checked.succeeded;
      outcome.output = checked.output;
      outcome.error = checked.error;
    }
    if (!secret_values.empty()) {
      outcome.error = mask_secrets(outcome.error, secret_values);
      outcome.log_tail = mask_secrets(outcome.log_tail, secret_values);
    }
    crash_marker::working_on(0);
    attempts.add({job.node_id, outcome.succeeded, job.input, outcome.output, outcome.error, job.started_at,
                  done.finished_at, static_cast<int>(outcome.exit_code), outcome.log_tail, outcome.container_id});
  }
  attempts.record(std::nullopt);
  return deferred;
}

std::vector<int> record_stopped(const std::vector<rule_pool::StoppedAttempt>& stopped) {
  std::vector<int> recorded;
  if (stopped.empty()) return recorded;
  std::vector<std::int64_t> nodes;
  for (const auto& attempt : stopped) nodes.push_back(attempt.node);
  std::set<std::int64_t> writable = writable_now(nodes);
  Attempts attempts;
  for (const auto& attempt : stopped) {
    if (!writable.count(attempt.node)) continue;
    // Its input died with the worker's transaction: the attempt keeps JSON null.
    attempts.add({attempt.node, false, "null", "",
                  "timed out after " + std::to_string(attempt.timeout_seconds) +
                      " s and went on; the RULE worker running it was stopped",
                  attempt.started_at, now_text()});
    recorded.push_back(attempt.entry);
  }
  attempts.record(std::nullopt);
  return recorded;
}

namespace {
FailureBackoff after_failure;  // one loop a process: the worker's
}  // namespace

void pass_succeeded() {
  careful_recording = false;
  after_failure.succeeded();
}

long pass_failed() {
  careful_recording = true;
  return after_failure.failed(config::poll_interval_ms);
}

bool note_crashes_left() {
  pg::InstalledExtension::State state = pg::InstalledExtension::missing;
  pg::run_transaction("pg_orchestration: noting crashes", [&] { state = pg::installed_extension().state; });
  // Another version's objects: the markers wait for the update. No extension: the nodes
  // they name are gone, and a new one's would be others with the same ids.
  if (state == pg::InstalledExtension::other_version) return false;
  crash_marker::note_leftovers(pg::guard([] { return MyDatabaseId; }), [&](std::int64_t node) {
    if (state != pg::InstalledExtension::current) return;
    pg::run_transaction("pg_orchestration: noting a crash", [&] { spi_run(kNoteCrashSql, {std::to_string(node)}); });
  });
  return true;
}

std::vector<executors::ContainerJob> containers_to_adopt(const std::string& database) {
  std::vector<executors::ContainerJob> jobs;
  pg::Rows rows = spi_run(kRunningContainersSql);
  pg::RowReader running(rows, "running_containers");
  std::set<std::string> wanted;
  Attempts orphans;
  for (std::size_t i = 0; i < running.size(); ++i) {
    // Its agent or capability was deleted while it ran (by the table's owner; delete_agent
    // refuses): nothing says how to check its output, so its attempt fails (as any
    // attempt: retried if it may be, cancelled if its run was), and its container, which
    // no node waits for now, is removed below.
    if (!running.value(i, "capability_id")) {
      orphans.add({running.int64(i, "node_id"), false, running.text(i, "input"), "",
                   "its agent, or the capability it calls, was deleted while its container ran",
                   running.text(i, "started_at"), now_text()});
      continue;
    }
    ContainerFacts facts;
    facts.node_id = running.int64(i, "node_id");
    facts.project_id = running.int64(i, "project_id");
    facts.run_id = running.int64(i, "run_id");
    facts.node_key = running.text(i, "node_key");
    facts.attempt = running.int32(i, "attempt");
    facts.adopt_name = running.text(i, "container_name");
    facts.input = running.text(i, "input");
    facts.started_at = running.text(i, "started_at");
    facts.timeout_seconds = running.int32(i, "timeout_seconds");
    facts.memory_mb = running.int64(i, "memory_mb");
    facts.pids = running.int64(i, "pids_limit");
    facts.capability_id = running.text(i, "capability_id");
    facts.contract_version = running.text(i, "contract_version");
    facts.capability = running.text(i, "capability");
    // Only to mask them in what the container printed: it already has them.
    const std::string& names = running.text(i, "secrets");
    if (names != "{}") facts.secrets = project_secrets(running.text(i, "project_id"), names);
    wanted.insert(facts.adopt_name);
    jobs.push_back(container_job(database, std::move(facts)));
  }
  orphans.record(std::nullopt);
  // Containers of this database that no RUNNING node waits for: left by a crash after
  // their result was recorded, or before their node was. Remove them.
  try {
    docker::DockerClient client(engine_address());
    json ours = client.list_containers(docker::ours_filters(cluster_id(), database));
    for (const auto& container : ours) {
      std::string name = container["Names"].empty() ? "" : container["Names"][0].get<std::string>();
      if (!name.empty() && name[0] == '/') name.erase(0, 1);
      if (!wanted.count(name)) client.remove_container(container.value("Id", name));
    }
  } catch (const std::exception& e) {
    // No engine (yet): the adopt jobs will say so for each node; nothing else to clean.
  }
  return jobs;
}

std::vector<std::int64_t> cancelled_in_flight(const std::vector<std::int64_t>& in_flight) {
  std::vector<std::int64_t> cancelled;
  if (in_flight.empty()) return cancelled;
  pg::Rows rows = spi_run(kCancelledSql, {array_literal(in_flight)});
  pg::RowReader r(rows, "cancelled_nodes");
  for (std::size_t i = 0; i < r.size(); ++i) cancelled.push_back(r.int64(i, "node_id"));
  return cancelled;
}

}  // namespace orch::scheduler
