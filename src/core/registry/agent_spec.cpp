#include "core/registry/agent_spec.hpp"

#include <cctype>
#include <set>

#include "core/common/spec_reader.hpp"
#include "core/common/user_error.hpp"
#include "core/registry/names.hpp"
#include "core/schema/json_schema.hpp"

namespace orch::registry {
namespace {

constexpr const char* kWhat = "agent spec";

// Image references as Docker accepts them ("busybox", "registry:5000/team/app:1.2@sha256:…"),
// without whitespace or shell metacharacters. Docker checks the rest when it pulls.
bool is_plausible_image(const std::string& image) {
  if (image.empty() || image.size() > 255) return false;
  if (!std::isalnum(static_cast<unsigned char>(image[0]))) return false;
  for (char c : image)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
        c != '/' && c != ':' && c != '@')
      return false;
  return true;
}

json read_schema(SpecReader& reader, const char* key) {
  const json* schema = reader.any(key);
  if (!schema) return true;  // the schema that accepts everything
  if (!schema->is_object() && !schema->is_boolean())
    reader.fail(key, std::string("must be a JSON Schema (an object or a boolean), not ") +
                         json_type_name(*schema));
  try {
    // Refused now, not when a node runs. References to registered schemas are checked by
    // store_agent, which has the project's (orchestration.json_schema_documents_used).
    schema::CompileOptions options;
    options.unknown_documents_accepted = true;
    schema::Schema::compile(*schema, options);
  } catch (const UserError& e) {
    std::string problem = e.what();
    const std::string prefix = "invalid JSON Schema ";
    if (problem.compare(0, prefix.size(), prefix) == 0) problem = problem.substr(prefix.size());
    reader.fail(key, "is not a valid JSON Schema: " + problem);
  }
  return *schema;
}

json read_capabilities(SpecReader& top) {
  const json* list = top.optional_array("capabilities");
  if (!list || list->empty())
    throw UserError(top.field_name("capabilities") + " must list at least one capability",
                    {}, R"(For example: "capabilities": [{"name": "scan"}].)");
  if (list->size() > kMaxCapabilities)
    top.fail("capabilities", "has more than " + std::to_string(kMaxCapabilities) + " entries");

  json out = json::array();
  std::set<std::string> names;
  for (std::size_t i = 0; i < list->size(); ++i) {
    SpecReader cap((*list)[i], kWhat, "capabilities[" + std::to_string(i) + "].");
    std::string name = cap.required_string("name", 63);
    if (auto problem = name_problem(NameKind::identifier, name); !problem.empty())
      cap.fail("name", "\"" + name + "\": " + problem);
    if (!names.insert(name).second)
      cap.fail("name", "\"" + name + "\" is listed twice");
    json entry = {{"name", name},
                  {"description", nullptr},
                  {"input_schema", read_schema(cap, "input_schema")},
                  {"output_schema", read_schema(cap, "output_schema")}};
    if (auto description = cap.optional_string("description", kMaxDescription))
      entry["description"] = *description;
    cap.reject_unknown_fields();
    out.push_back(std::move(entry));
  }
  return out;
}

json read_env(SpecReader& top) {
  json out = json::object();
  const json* env = top.optional_object("env");
  if (!env) return out;
  for (auto it = env->begin(); it != env->end(); ++it) {
    std::string field = "env." + it.key();
    if (auto problem = name_problem(NameKind::env_var, it.key()); !problem.empty())
      top.fail(field, "\"" + it.key() + "\" is not a valid environment variable name: " +
                          problem);
    if (!it->is_string())
      top.fail(field, std::string("must be a string, not ") + json_type_name(*it));
    if (it->get_ref<const std::string&>().find('\0') != std::string::npos)
      top.fail(field, "must not contain NUL characters");
    out[it.key()] = *it;
  }
  return out;
}

json read_secrets(SpecReader& top, const json& env) {
  json names = top.string_array("secrets");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& name = names[i].get_ref<const std::string&>();
    std::string field = "secrets[" + std::to_string(i) + "]";
    if (auto problem = name_problem(NameKind::env_var, name); !problem.empty())
      top.fail(field, "\"" + name + "\" is not a valid secret name: " + problem);
    if (!seen.insert(name).second) top.fail(field, "\"" + name + "\" is listed twice");
    if (env.contains(name))
      top.fail(field, "\"" + name + "\" is also set in \"env\"; a variable comes from one "
                                    "place only");
  }
  return names;
}

json read_container_limits(SpecReader& top) {
  json limits = {{"memory_mb", static_cast<std::int64_t>(kMemoryMb.fallback)},
                 {"cpus", kCpus.fallback},
                 {"timeout_seconds", static_cast<std::int64_t>(kTimeoutSeconds.fallback)},
                 {"pids", static_cast<std::int64_t>(kPids.fallback)}};
  const json* given = top.optional_object("limits");
  if (!given) return limits;
  SpecReader reader(*given, kWhat, "limits.");
  auto int_limit = [&](const char* key, const LimitRange& range) {
    limits[key] = reader.optional_int(key, static_cast<std::int64_t>(range.min),
                                      static_cast<std::int64_t>(range.max),
                                      static_cast<std::int64_t>(range.fallback));
  };
  int_limit("memory_mb", kMemoryMb);
  limits["cpus"] = reader.optional_number("cpus", kCpus.min, kCpus.max, kCpus.fallback);
  int_limit("timeout_seconds", kTimeoutSeconds);
  int_limit("pids", kPids);
  reader.reject_unknown_fields();
  return limits;
}

json read_rule_limits(SpecReader& top) {
  json limits = {{"timeout_seconds", static_cast<std::int64_t>(kTimeoutSeconds.fallback)}};
  const json* given = top.optional_object("limits");
  if (!given) return limits;
  SpecReader reader(*given, kWhat, "limits.");
  limits["timeout_seconds"] = reader.optional_int(
      "timeout_seconds", static_cast<std::int64_t>(kTimeoutSeconds.min),
      static_cast<std::int64_t>(kTimeoutSeconds.max),
      static_cast<std::int64_t>(kTimeoutSeconds.fallback));
  for (auto it = given->begin(); it != given->end(); ++it)
    if (it.key() != "timeout_seconds")
      reader.fail(it.key(), "does not apply to RULE agents, which run inside the database; "
                            "only \"limits.timeout_seconds\" does");
  return limits;
}

}  // namespace

json normalize_agent_spec(const json& spec) {
  SpecReader top(spec, kWhat);
  json out = json::object();

  std::string name = top.required_string("name", 63);
  if (auto problem = name_problem(NameKind::identifier, name); !problem.empty())
    top.fail("name", "\"" + name + "\": " + problem);
  out["name"] = name;

  std::string type = top.enum_value("type", {"LLM", "RULE", "API", "SCRIPT"}, std::nullopt);
  out["type"] = type;
  out["version"] = top.optional_string("version", 64).value_or("1.0.0");
  if (out["version"].get_ref<const std::string&>().empty())
    top.fail("version", "must not be empty");
  out["risk_level"] = top.enum_value("risk_level", {"AUTO", "APPROVAL_REQUIRED"}, "AUTO");
  auto description = top.optional_string("description", kMaxDescription);
  out["description"] = description ? json(*description) : json(nullptr);

  if (type == "RULE") {
    // A RULE agent is a SQL function; container fields would silently do nothing.
    for (const char* key : {"image", "command", "entry_path", "env", "secrets", "allow_network"})
      if (top.has(key))
        top.fail(key, "does not apply to RULE agents, which run a SQL function inside the "
                      "database");
    std::string function = top.required_string("function", 512);
    out["function"] = function;
    out["limits"] = read_rule_limits(top);
  } else {
    if (top.has("function"))
      top.fail("function", "applies only to RULE agents; a " + type +
                               " agent runs the container \"image\"");
    std::string image = top.required_string("image", 255);
    if (!is_plausible_image(image))
      top.fail("image", "\"" + image + "\" is not a Docker image reference");
    out["image"] = image;
    out["command"] = top.string_array("command");
    auto entry_path = top.optional_string("entry_path", 1024);
    if (entry_path && (entry_path->empty() || (*entry_path)[0] != '/'))
      top.fail("entry_path", "must be an absolute path inside the image, such as "
                             "\"/agent/run\"");
    out["entry_path"] = entry_path ? json(*entry_path) : json(nullptr);
    out["env"] = read_env(top);
    out["secrets"] = read_secrets(top, out["env"]);
    out["limits"] = read_container_limits(top);
    out["allow_network"] = top.optional_bool("allow_network", false);
  }

  out["capabilities"] = read_capabilities(top);
  top.reject_unknown_fields();
  return out;
}

}  // namespace orch::registry
