#include "core/registry/agent_spec.hpp"

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"

using nlohmann::json;
using orch::UserError;
using orch::registry::normalize_agent_spec;

namespace {

json script_agent() {
  return json::parse(R"({
    "name": "security-scanner", "type": "SCRIPT", "version": "1.2.0",
    "image": "orchestration/security-scanner:latest",
    "capabilities": [{"name": "scan", "input_schema": {"type": "object"}}]
  })");
}

json rule_agent() {
  return json::parse(R"({
    "name": "triage", "type": "RULE", "function": "public.triage",
    "capabilities": [{"name": "decide"}]
  })");
}

// The message of the UserError that normalizing `spec` throws ("" if none).
std::string error_of(const json& spec) {
  try {
    normalize_agent_spec(spec);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// Its hint.
std::string hint_of(const json& spec) {
  try {
    normalize_agent_spec(spec);
  } catch (const UserError& e) {
    return e.hint();
  }
  return "";
}

}  // namespace

TEST(AgentSpec, FillsDefaultsForContainerAgents) {
  json out = normalize_agent_spec(script_agent());
  EXPECT_EQ(out["risk_level"], "AUTO");
  EXPECT_EQ(out["description"], nullptr);
  EXPECT_EQ(out["command"], json::array());
  EXPECT_EQ(out["env"], json::object());
  EXPECT_EQ(out["secrets"], json::array());
  EXPECT_EQ(out["allow_network"], false);
  EXPECT_EQ(out["limits"], json::parse(R"({"memory_mb":256,"cpus":1.0,"timeout_seconds":300,"pids":128})"));
  EXPECT_EQ(out["capabilities"][0]["output_schema"], true);
  EXPECT_EQ(out["capabilities"][0]["input_schema"], json::parse(R"({"type":"object"})"));
  EXPECT_FALSE(out.contains("function"));
}

TEST(AgentSpec, KeepsGivenValues) {
  json spec = script_agent();
  spec["limits"] = {{"memory_mb", 512}, {"cpus", 0.5}, {"timeout_seconds", 30}, {"pids", 16}};
  spec["env"] = {{"LOG_LEVEL", "debug"}};
  spec["secrets"] = {"API_TOKEN"};
  spec["command"] = {"--fast", "-v"};
  spec["entry_path"] = "/agent/run";
  spec["allow_network"] = true;
  spec["risk_level"] = "APPROVAL_REQUIRED";
  json out = normalize_agent_spec(spec);
  EXPECT_EQ(out["limits"]["memory_mb"], 512);
  EXPECT_EQ(out["limits"]["cpus"], 0.5);
  EXPECT_EQ(out["env"]["LOG_LEVEL"], "debug");
  EXPECT_EQ(out["secrets"], json({"API_TOKEN"}));
  EXPECT_EQ(out["command"], json({"--fast", "-v"}));
  EXPECT_EQ(out["entry_path"], "/agent/run");
  EXPECT_EQ(out["allow_network"], true);
  EXPECT_EQ(out["risk_level"], "APPROVAL_REQUIRED");
}

TEST(AgentSpec, RuleAgentsHaveAFunctionAndOnlyATimeout) {
  json out = normalize_agent_spec(rule_agent());
  EXPECT_EQ(out["function"], "public.triage");
  EXPECT_EQ(out["limits"], json::parse(R"({"timeout_seconds":300})"));
  EXPECT_FALSE(out.contains("image"));

  json spec = rule_agent();
  spec["image"] = "busybox";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"image\": does not apply to RULE agents, which run a "
            "SQL function inside the database");
  spec = rule_agent();
  spec["limits"] = {{"memory_mb", 64}};
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"limits.memory_mb\": does not apply to RULE agents, "
            "which run inside the database; only \"limits.timeout_seconds\" does");
  spec = rule_agent();
  spec.erase("function");
  EXPECT_EQ(error_of(spec), "agent spec field \"function\" is required");
}

TEST(AgentSpec, ContainerAgentsNeedAnImageAndNoFunction) {
  json spec = script_agent();
  spec.erase("image");
  EXPECT_EQ(error_of(spec), "agent spec field \"image\" is required");
  spec = script_agent();
  spec["image"] = "busybox; rm -rf /";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"image\": \"busybox; rm -rf /\" is not a Docker image "
            "reference");
  spec = script_agent();
  spec["function"] = "f";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"function\": applies only to RULE agents; a SCRIPT "
            "agent runs the container \"image\"");
}

TEST(AgentSpec, MissingAndMistypedFields) {
  json spec = script_agent();
  spec.erase("name");
  EXPECT_EQ(error_of(spec), "agent spec field \"name\" is required");
  spec = script_agent();
  spec["name"] = 42;
  EXPECT_EQ(error_of(spec), "invalid agent spec field \"name\": must be a string, not number");
  spec = script_agent();
  spec["allow_network"] = "yes";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"allow_network\": must be true or false, not \"yes\"");
  spec = script_agent();
  spec["command"] = "run";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"command\": must be a JSON array, not string");
  spec = script_agent();
  spec["command"] = {"ok", 3};
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"command[1]\": must be a string, not number");
  EXPECT_EQ(error_of(json::array()), "agent spec must be a JSON object, not array");
}

TEST(AgentSpec, UnknownEnumValuesListTheAllowedOnes) {
  json spec = script_agent();
  spec["type"] = "SHELL";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"type\": \"SHELL\" is not one of LLM, RULE, API, SCRIPT");
  spec = script_agent();
  spec["risk_level"] = "low";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"risk_level\": \"low\" is not one of AUTO, "
            "APPROVAL_REQUIRED");
  spec = script_agent();
  spec.erase("type");
  EXPECT_EQ(error_of(spec), "agent spec field \"type\" is required");
}

TEST(AgentSpec, UnknownFieldsAreTyposNotIgnored) {
  json spec = script_agent();
  spec["imgae"] = "busybox";
  EXPECT_EQ(error_of(spec), "agent spec has an unknown field \"imgae\"");
  spec = script_agent();
  spec["limits"] = {{"memory", 64}};
  EXPECT_EQ(error_of(spec), "agent spec has an unknown field \"limits.memory\"");
  spec = script_agent();
  spec["capabilities"][0]["inputs"] = json::object();
  EXPECT_EQ(error_of(spec), "agent spec has an unknown field \"capabilities[0].inputs\"");
}

TEST(AgentSpec, MisspelledFieldsAreNamed) {
  // "imgae" instead of "image": the missing field's error names the typo.
  json spec = script_agent();
  spec.erase("image");
  spec["imgae"] = "busybox";
  EXPECT_EQ(error_of(spec), "agent spec field \"image\" is required");
  EXPECT_EQ(hint_of(spec), "Is \"imgae\" a misspelling of \"image\"?");
  // A typo beside the right field: the unknown field's hint suggests the known one.
  spec = script_agent();
  spec["limits"] = {{"memroy_mb", 64}};
  EXPECT_EQ(error_of(spec), "agent spec has an unknown field \"limits.memroy_mb\"");
  EXPECT_EQ(hint_of(spec).rfind("Did you mean \"limits.memory_mb\"? Known fields of \"limits\": ", 0), 0u)
      << hint_of(spec);
  // A missing enum field beside its typo keeps the list of values.
  spec = script_agent();
  spec.erase("type");
  spec["tpye"] = "SCRIPT";
  EXPECT_EQ(hint_of(spec).rfind("Is \"tpye\" a misspelling of \"type\"? Use one of ", 0), 0u) << hint_of(spec);
  // A name far from every known one gets no guess.
  spec = script_agent();
  spec["colour"] = "blue";
  EXPECT_EQ(hint_of(spec).rfind("Known fields: ", 0), 0u) << hint_of(spec);
}

TEST(AgentSpec, NegativeAndAbsurdLimits) {
  auto with_limit = [](const char* key, json value) {
    json spec = script_agent();
    spec["limits"] = {{key, value}};
    return error_of(spec);
  };
  EXPECT_EQ(with_limit("memory_mb", -5),
            "invalid agent spec field \"limits.memory_mb\": must be an integer from 6 to "
            "65536, not -5");
  EXPECT_EQ(with_limit("memory_mb", 1e12),
            "invalid agent spec field \"limits.memory_mb\": must be an integer from 6 to "
            "65536, not 1000000000000.0");
  EXPECT_EQ(with_limit("timeout_seconds", 0),
            "invalid agent spec field \"limits.timeout_seconds\": must be an integer from 1 "
            "to 86400, not 0");
  EXPECT_EQ(with_limit("timeout_seconds", 1.5),
            "invalid agent spec field \"limits.timeout_seconds\": must be an integer from 1 "
            "to 86400, not 1.5");
  EXPECT_EQ(with_limit("pids", "10"),
            "invalid agent spec field \"limits.pids\": must be an integer from 1 to 32768, "
            "not \"10\"");
  EXPECT_EQ(with_limit("cpus", 0),
            "invalid agent spec field \"limits.cpus\": must be a number from 0.01 to 64.0, "
            "not 0");
  EXPECT_EQ(with_limit("memory_mb", 64.0), "");  // an integral float is an integer
}

TEST(AgentSpec, Capabilities) {
  json spec = script_agent();
  spec["capabilities"] = json::array();
  EXPECT_EQ(error_of(spec), "agent spec field \"capabilities\" must list at least one capability");
  spec.erase("capabilities");
  EXPECT_EQ(error_of(spec), "agent spec field \"capabilities\" must list at least one capability");
  spec["capabilities"] = json::parse(R"([{"description": "no name"}])");
  EXPECT_EQ(error_of(spec), "agent spec field \"capabilities[0].name\" is required");
  spec["capabilities"] = json::parse(R"([{"name": "a"}, {"name": "a"}])");
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"capabilities[1].name\": \"a\" is listed twice");
  spec["capabilities"] = json::parse(R"([{"name": "a", "output_schema": "string"}])");
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"capabilities[0].output_schema\": must be a JSON "
            "Schema (an object or a boolean), not string");
  spec["capabilities"] = json::parse(R"([{"name": "a", "input_schema": [1]}])");
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"capabilities[0].input_schema\": must be a JSON "
            "Schema (an object or a boolean), not array");
  spec["capabilities"] = json::parse(R"([{"name": "a", "input_schema": false}])");
  EXPECT_EQ(error_of(spec), "");
  spec["capabilities"] = json::parse(R"([{"name": "a", "output_schema": {"properties": {"n": {"minimum": "1"}}}}])");
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"capabilities[0].output_schema\": is not a valid JSON Schema: at "
            "/properties/n/minimum: must be a number, not string");
  spec["capabilities"] = json::parse(R"([{"name": "a", "input_schema": {"$ref": "#/$defs/nope"}}])");
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"capabilities[0].input_schema\": is not a valid JSON Schema: at "
            "/$ref: $ref \"#/$defs/nope\" does not resolve: nothing at \"/$defs\"");
  spec["capabilities"] = json::parse(R"(["scan"])");
  EXPECT_EQ(error_of(spec), "agent spec field \"capabilities[0]\" must be a JSON object, not string");
}

TEST(AgentSpec, NamesOutsideTheDocumentedSet) {
  json spec = script_agent();
  spec["name"] = "my agent";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"name\": \"my agent\": it may contain only letters, "
            "digits, '_', '-' and '.'");
  spec = script_agent();
  spec["capabilities"][0]["name"] = "scan/all";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"capabilities[0].name\": \"scan/all\": it may contain "
            "only letters, digits, '_', '-' and '.'");
  spec = script_agent();
  spec["env"] = {{"LOG-LEVEL", "x"}};
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"env.LOG-LEVEL\": \"LOG-LEVEL\" is not a valid "
            "environment variable name: it may contain only letters, digits and '_'");
  spec = script_agent();
  spec["env"] = {{"LEVEL", 3}};
  EXPECT_EQ(error_of(spec), "invalid agent spec field \"env.LEVEL\": must be a string, not number");
}

TEST(AgentSpec, SecretsAreUniqueNamesNotAlsoInEnv) {
  json spec = script_agent();
  spec["secrets"] = {"TOKEN", "TOKEN"};
  EXPECT_EQ(error_of(spec), "invalid agent spec field \"secrets[1]\": \"TOKEN\" is listed twice");
  spec["secrets"] = {"TOKEN"};
  spec["env"] = {{"TOKEN", "plain"}};
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"secrets[0]\": \"TOKEN\" is also set in \"env\"; a "
            "variable comes from one place only");
  spec.erase("env");
  spec["secrets"] = {"9LIVES"};
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"secrets[0]\": \"9LIVES\" is not a valid secret name: "
            "it must not start with a digit");
}

TEST(AgentSpec, EntryPathMustBeAbsolute) {
  json spec = script_agent();
  spec["entry_path"] = "run.sh";
  EXPECT_EQ(error_of(spec),
            "invalid agent spec field \"entry_path\": must be an absolute path inside the "
            "image, such as \"/agent/run\"");
}

TEST(AgentSpec, NullMeansAbsent) {
  json spec = script_agent();
  spec["description"] = nullptr;
  spec["limits"] = nullptr;
  EXPECT_EQ(error_of(spec), "");
}
