#include "core/workflow/workflow_spec.hpp"

#include <map>

#include <set>

#include "core/common/spec_reader.hpp"
#include "core/common/user_error.hpp"
#include "core/registry/agent_spec.hpp"
#include "core/registry/names.hpp"
#include "core/template/condition.hpp"
#include "core/template/template.hpp"
#include "core/workflow/workflow_graph.hpp"

namespace orch::workflow {
namespace {

using registry::NameKind;
using registry::name_problem;

constexpr const char* kWhat = "workflow spec";

json read_trigger(SpecReader& top) {
  const json* trigger = top.optional_object("trigger");
  if (!trigger) return json{{"type", "manual"}};
  SpecReader reader(*trigger, kWhat, "trigger.");
  std::string type = reader.enum_value("type", {"manual", "nats", "table", "cron"}, std::nullopt);
  json out = {{"type", type}};
  if (type == "nats") {
    std::string subject = reader.required_string("subject", 255);
    if (!is_valid_nats_subject(subject))
      reader.fail("subject", "\"" + subject + "\" is not a NATS subject (dot-separated tokens; "
                             "'*' matches one token, a final '>' the rest)");
    // The relay publishes every project's events under "orchestration."; a trigger there
    // would read other projects' events (or start itself for ever).
    std::string first = subject.substr(0, subject.find('.'));
    if (first == "orchestration" || first == "*" || first == ">")
      reader.fail("subject", "\"" + subject + "\" overlaps \"orchestration.>\", where pg_orchestration "
                             "publishes its events; choose a subject outside it");
    out["subject"] = subject;
  } else if (type == "cron") {
    throw UserError("invalid workflow spec field \"trigger.type\": cron triggers are not "
                    "supported yet", {},
                    "Start the workflow from pg_cron with orchestration.start_workflow() "
                    "meanwhile, and give it a manual trigger.");
  }
  reader.reject_unknown_fields();
  return out;
}

json read_node(const json& given, std::size_t index) {
  SpecReader node(given, kWhat, "nodes[" + std::to_string(index) + "].");
  json out = json::object();
  std::string id = node.required_string("id", 63);
  if (auto problem = name_problem(NameKind::node_key, id); !problem.empty())
    node.fail("id", "\"" + id + "\": " + problem);
  out["id"] = id;
  std::string agent = node.required_string("agent", 63);
  if (auto problem = name_problem(NameKind::identifier, agent); !problem.empty())
    node.fail("agent", "\"" + agent + "\": " + problem);
  out["agent"] = agent;
  std::string action = node.required_string("action", 63);
  if (auto problem = name_problem(NameKind::identifier, action); !problem.empty())
    node.fail("action", "\"" + action + "\": " + problem);
  out["action"] = action;

  const json* inputs = node.any("inputs");
  out["inputs"] = inputs ? *inputs : json::object();
  out["depends_on"] = node.string_array("depends_on", "a node id (a string)");
  out["approval_required"] = node.optional_bool("approval_required", false);
  out["retries"] = node.optional_int("retries", 0, kMaxRetries, 0);
  out["retry_backoff_seconds"] = node.optional_number("retry_backoff_seconds", 0, 86400, 1);
  out["timeout_seconds"] = node.has("timeout_seconds")
                               ? json(node.optional_int(
                                     "timeout_seconds",
                                     static_cast<std::int64_t>(registry::kTimeoutSeconds.min),
                                     static_cast<std::int64_t>(registry::kTimeoutSeconds.max), 0))
                               : json(nullptr);
  const json* when = node.any("when");
  out["when"] = when ? *when : json(nullptr);
  out["run_if_skipped"] = node.optional_bool("run_if_skipped", false);
  node.reject_unknown_fields();

  // Templates and the condition must parse; their errors name the node.
  std::set<std::string> refs;
  try {
    refs = templating::referenced_nodes(out["inputs"]);
    templating::check_condition(out["when"]);
    for (const auto& ref : templating::condition_nodes(out["when"])) refs.insert(ref);
  } catch (const UserError& e) {
    throw UserError("invalid workflow spec: node \"" + id + "\": " + e.what(), e.detail(),
                    e.hint());
  }
  out["refs"] = refs;
  return out;
}

}  // namespace

bool is_valid_nats_subject(const std::string& subject) {
  if (subject.empty()) return false;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = subject.find('.', start);
    std::string token = subject.substr(start, dot == std::string::npos ? std::string::npos
                                                                       : dot - start);
    if (token.empty()) return false;
    for (char c : token)
      if (std::isspace(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) < 32)
        return false;
    if (token.find('*') != std::string::npos && token != "*") return false;
    if (token.find('>') != std::string::npos && (token != ">" || dot != std::string::npos))
      return false;
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

json normalize_workflow_spec(const json& spec) {
  SpecReader top(spec, kWhat);
  json out = json::object();
  std::string name = top.required_string("name", 63);
  if (auto problem = name_problem(NameKind::identifier, name); !problem.empty())
    top.fail("name", "\"" + name + "\": " + problem);
  out["name"] = name;
  auto description = top.optional_string("description", registry::kMaxDescription);
  out["description"] = description ? json(*description) : json(nullptr);
  out["trigger"] = read_trigger(top);
  out["status"] = top.enum_value("status", {"ACTIVE", "DRAFT", "ARCHIVED"}, "ACTIVE");

  const json* nodes = top.optional_array("nodes");
  if (!nodes || nodes->empty())
    throw UserError(top.field_name("nodes") + " must list at least one node", {},
                    R"(For example: "nodes": [{"id": "scan", "agent": "scanner", "action": "scan"}].)");
  if (nodes->size() > kMaxNodes)
    top.fail("nodes", "has more than " + std::to_string(kMaxNodes) + " nodes");
  top.reject_unknown_fields();

  json list = json::array();
  std::set<std::string> ids;
  for (std::size_t i = 0; i < nodes->size(); ++i) {
    json node = read_node((*nodes)[i], i);
    if (!ids.insert(node["id"].get<std::string>()).second)
      throw UserError("invalid workflow spec: node id \"" + node["id"].get<std::string>() +
                      "\" is used twice (nodes[" + std::to_string(i) + "])");
    list.push_back(std::move(node));
  }
  for (const auto& node : list) {
    const std::string& id = node["id"].get_ref<const std::string&>();
    std::set<std::string> seen;
    for (const auto& dep : node["depends_on"]) {
      const std::string& name = dep.get_ref<const std::string&>();
      if (!ids.count(name))
        throw UserError("invalid workflow spec: node \"" + id + "\" depends on \"" + name +
                        "\", which is not a node of this workflow");
      if (!seen.insert(name).second)
        throw UserError("invalid workflow spec: node \"" + id + "\" lists \"" + name +
                        "\" twice in depends_on");
    }
    for (const auto& ref : node["refs"]) {
      const std::string& name = ref.get_ref<const std::string&>();
      if (!ids.count(name))
        throw UserError("invalid workflow spec: node \"" + id + "\" refers to {{ nodes." + name +
                        ".output }}, but there is no node \"" + name + "\"");
    }
  }
  std::vector<GraphNode> graph;
  for (const auto& node : list)
    graph.push_back({node["id"].get<std::string>(), node["depends_on"].get<std::vector<std::string>>(),
                     node["refs"].get<std::vector<std::string>>()});
  check_workflow_graph(graph);
  std::map<std::string, std::vector<std::string>> dependents;  // in spec order
  for (const auto& node : list)
    for (const auto& dep : node["depends_on"]) dependents[dep.get<std::string>()].push_back(node["id"].get<std::string>());
  for (auto& node : list) {
    const std::string& id = node["id"].get_ref<const std::string&>();
    node["dependents"] = dependents[id];
  }
  out["nodes"] = std::move(list);
  return out;
}

}  // namespace orch::workflow
