#include "core/workflow/workflow_spec.hpp"

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"

using nlohmann::json;
using orch::UserError;
using namespace orch::workflow;

namespace {

json diamond() {
  return json::parse(R"({
    "name": "diamond",
    "nodes": [
      {"id": "a", "agent": "triage", "action": "decide", "inputs": {"x": "{{ context.x }}"}},
      {"id": "b", "agent": "triage", "action": "decide", "depends_on": ["a"],
       "inputs": {"from_a": "{{ nodes.a.output }}"}},
      {"id": "c", "agent": "triage", "action": "decide", "depends_on": ["a"]},
      {"id": "d", "agent": "triage", "action": "decide", "depends_on": ["b", "c"],
       "inputs": {"b": "{{ nodes.b.output.v }}", "c": "{{ nodes.c.output.v }}"},
       "when": "{{ nodes.a.output.go }}"}
    ]})");
}

std::string error_of(const json& spec) {
  try {
    normalize_workflow_spec(spec);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(WorkflowSpec, NormalizesWithDefaults) {
  json out = normalize_workflow_spec(diamond());
  EXPECT_EQ(out["trigger"], json::parse(R"({"type": "manual"})"));
  EXPECT_EQ(out["status"], "ACTIVE");
  const json& a = out["nodes"][0];
  EXPECT_EQ(a["depends_on"], json::array());
  EXPECT_EQ(a["retries"], 0);
  EXPECT_EQ(a["retry_backoff_seconds"], 1.0);
  EXPECT_EQ(a["timeout_seconds"], nullptr);
  EXPECT_EQ(a["approval_required"], false);
  EXPECT_EQ(a["run_if_skipped"], false);
  EXPECT_EQ(a["refs"], json::array());
  EXPECT_EQ(out["nodes"][3]["refs"], json({"a", "b", "c"}));  // inputs and condition
  // Levels come from SQL alone (store_workflow_nodes), not from here.
  for (const json& node : out["nodes"]) EXPECT_FALSE(node.contains("level")) << node["id"];
}

TEST(WorkflowSpec, Triggers) {
  json spec = diamond();
  spec["trigger"] = {{"type", "nats"}, {"subject", "jobs.*.created"}};
  EXPECT_EQ(normalize_workflow_spec(spec)["trigger"]["subject"], "jobs.*.created");
  spec["trigger"] = {{"type", "nats"}};
  EXPECT_EQ(error_of(spec), "workflow spec field \"trigger.subject\" is required");
  spec["trigger"] = {{"type", "nats"}, {"subject", "a.>.b"}};
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec field \"trigger.subject\": \"a.>.b\" is not a NATS subject "
            "(dot-separated tokens; '*' matches one token, a final '>' the rest)");
  // A trigger may not listen to pg_orchestration's own events (every project's).
  for (const char* subject : {"orchestration.1.>", "orchestration.>", "*.1.run.created", ">"}) {
    spec["trigger"] = {{"type", "nats"}, {"subject", subject}};
    EXPECT_EQ(error_of(spec), std::string("invalid workflow spec field \"trigger.subject\": \"") + subject +
                                  "\" overlaps \"orchestration.>\", where pg_orchestration publishes its "
                                  "events; choose a subject outside it");
  }
  spec["trigger"] = {{"type", "nats"}, {"subject", "orchestrations.jobs"}};
  EXPECT_EQ(normalize_workflow_spec(spec)["trigger"]["subject"], "orchestrations.jobs");
  spec["trigger"] = {{"type", "webhook"}};
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec field \"trigger.type\": \"webhook\" is not one of manual, nats, "
            "table, cron");
  spec["trigger"] = {{"type", "cron"}, {"schedule", "* * * * *"}};
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec field \"trigger.type\": cron triggers are not supported yet");
  spec["trigger"] = {{"type", "table"}, {"table", "x"}};
  EXPECT_EQ(error_of(spec), "workflow spec has an unknown field \"trigger.table\"");
}

TEST(WorkflowSpec, NatsSubjects) {
  EXPECT_TRUE(is_valid_nats_subject("a"));
  EXPECT_TRUE(is_valid_nats_subject("a.b.>"));
  EXPECT_TRUE(is_valid_nats_subject("*.b"));
  EXPECT_FALSE(is_valid_nats_subject("a..b"));
  EXPECT_FALSE(is_valid_nats_subject("a.b*"));
  EXPECT_FALSE(is_valid_nats_subject("a b"));
  EXPECT_FALSE(is_valid_nats_subject(""));
  EXPECT_FALSE(is_valid_nats_subject("a."));
}

TEST(WorkflowSpec, NodeErrorsNameTheNode) {
  json spec = diamond();
  spec["nodes"][1]["id"] = "a";
  EXPECT_EQ(error_of(spec), "invalid workflow spec: node id \"a\" is used twice (nodes[1])");
  spec = diamond();
  spec["nodes"][2]["depends_on"] = {"z"};
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec: node \"c\" depends on \"z\", which is not a node of this workflow");
  spec = diamond();
  spec["nodes"][2]["depends_on"] = {"a", "a"};
  EXPECT_EQ(error_of(spec), "invalid workflow spec: node \"c\" lists \"a\" twice in depends_on");
  spec = diamond();
  spec["nodes"][2]["inputs"] = {{"x", "{{ nodes.ghost.output }}"}};
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec: node \"c\" refers to {{ nodes.ghost.output }}, but there is no "
            "node \"ghost\"");
  spec = diamond();
  spec["nodes"][2]["inputs"] = {{"x", "{{ nodes.a.output"}};
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec: node \"c\": unclosed {{ in template \"{{ nodes.a.output\"");
  spec = diamond();
  spec["nodes"][3]["when"] = "{{ nodes.a.output }} ~ 1";
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec: node \"d\": invalid \"when\" condition \"{{ nodes.a.output }} ~ "
            "1\": expected one of == != < <= > >= after the first operand");
  spec = diamond();
  spec["nodes"][0]["id"] = "a.b";
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec field \"nodes[0].id\": \"a.b\": it may contain only letters, "
            "digits, '_' and '-'");
  spec = diamond();
  spec["nodes"][0].erase("action");
  EXPECT_EQ(error_of(spec), "workflow spec field \"nodes[0].action\" is required");
  spec = diamond();
  spec["nodes"][0]["retries"] = -1;
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec field \"nodes[0].retries\": must be an integer from 0 to 100, not -1");
  spec = diamond();
  spec["nodes"][0]["timeout_seconds"] = 0;
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec field \"nodes[0].timeout_seconds\": must be an integer from 1 to "
            "86400, not 0");
  spec = diamond();
  spec["nodes"][0]["dependsOn"] = json::array();
  EXPECT_EQ(error_of(spec), "workflow spec has an unknown field \"nodes[0].dependsOn\"");
  spec = diamond();
  spec["nodes"][0]["depends_on"] = {1};
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec field \"nodes[0].depends_on[0]\": must be a node id (a string), not number");
}

TEST(WorkflowSpec, TopLevel) {
  json spec = diamond();
  spec["nodes"] = json::array();
  EXPECT_EQ(error_of(spec), "workflow spec field \"nodes\" must list at least one node");
  spec = diamond();
  spec["status"] = "PAUSED";
  EXPECT_EQ(error_of(spec),
            "invalid workflow spec field \"status\": \"PAUSED\" is not one of ACTIVE, DRAFT, ARCHIVED");
  spec = diamond();
  spec.erase("name");
  EXPECT_EQ(error_of(spec), "workflow spec field \"name\" is required");
}
