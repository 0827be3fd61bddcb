#include "core/docker/container_config.hpp"

#include <algorithm>
#include <cctype>

#include "core/common/user_error.hpp"

namespace orch::docker {

namespace {

// Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]; node keys (validated) and system
// identifiers (digits) already do, database names may not, so anything else becomes '_'.
std::string name_part(const std::string& text) {
  std::string out;
  for (char c : text)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') ? c : '_';
  return out;
}

}  // namespace

std::string container_name(const AttemptId& id) {
  // The name starts with "orch-", so it starts with a letter whatever the parts are.
  return "orch-" + name_part(id.cluster) + "-" + name_part(id.database) + "-r" + std::to_string(id.run) + "-" +
         name_part(id.node_key) + "-a" + std::to_string(id.attempt);
}

std::vector<std::string> ours_filters(const std::string& cluster, const std::string& database) {
  return {std::string(kLabelManaged) + "=true", std::string(kLabelCluster) + "=" + cluster,
          std::string(kLabelDatabase) + "=" + database};
}

json create_body(const ContainerRequest& request, const Ceilings& ceilings) {
  std::int64_t memory_mb = std::min(request.memory_mb, ceilings.memory_mb);
  double cpus = std::min(request.cpus, ceilings.cpus);
  std::int64_t pids = std::min(request.pids, ceilings.pids);
  bool network = request.allow_network && ceilings.allow_network;

  json env = json::array();
  for (const auto& [name, value] : request.env) env.push_back(name + "=" + value);
  for (const auto& [name, value] : request.secrets) env.push_back(name + "=" + value);
  if (!request.traceparent.empty()) env.push_back("TRACEPARENT=" + request.traceparent);

  json body = {
      {"Image", request.image},
      {"User", request.user},
      {"Env", env},
      {"Labels",
       {{kLabelManaged, "true"},
        {kLabelCluster, request.id.cluster},
        {kLabelDatabase, request.id.database},
        {kLabelProject, std::to_string(request.id.project)},
        {kLabelRun, std::to_string(request.id.run)},
        {kLabelNode, std::to_string(request.id.node)},
        {kLabelNodeKey, request.id.node_key},
        {kLabelAttempt, std::to_string(request.id.attempt)}}},
      // The input arrives on stdin; closing it gives the agent EOF.
      {"OpenStdin", true},
      {"StdinOnce", true},
      {"AttachStdin", true},
      {"AttachStdout", true},
      {"AttachStderr", true},
      {"Tty", false},
      {"NetworkDisabled", !network},
      {"HostConfig",
       {{"NetworkMode", network ? "bridge" : "none"},
        {"ReadonlyRootfs", true},
        {"Tmpfs", {{"/tmp", "rw,noexec,nosuid,nodev,mode=1777,size=" + std::to_string(request.tmpfs_mb) + "m"}}},
        {"CapDrop", {"ALL"}},
        {"SecurityOpt", {"no-new-privileges"}},
        {"PidsLimit", pids},
        {"Memory", memory_mb * 1024 * 1024},
        {"MemorySwap", memory_mb * 1024 * 1024},  // equal to Memory: no swap
        {"NanoCpus", static_cast<std::int64_t>(cpus * 1e9)},
        {"Privileged", false},
        {"AutoRemove", false}}}};  // removed by us, after its output and exit code are read
  if (request.entry_path) body["Entrypoint"] = json::array({*request.entry_path});
  if (!request.command.empty()) body["Cmd"] = request.command;
  return body;
}

namespace {

bool glob_match(const char* pattern, const char* text) {
  // Iterative matching with one backtrack point for the last '*': linear in practice.
  const char* star = nullptr;
  const char* resume = nullptr;
  while (*text) {
    if (*pattern == '*') {
      star = pattern++;
      resume = text;
    } else if (*pattern == '?' || *pattern == *text) {
      ++pattern;
      ++text;
    } else if (star) {
      pattern = star + 1;
      text = ++resume;
    } else {
      return false;
    }
  }
  while (*pattern == '*') ++pattern;
  return *pattern == '\0';
}

}  // namespace

bool image_allowed(const std::string& image, const std::string& patterns) {
  std::size_t start = 0;
  while (start <= patterns.size()) {
    std::size_t comma = patterns.find(',', start);
    std::string pattern = patterns.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    std::size_t b = pattern.find_first_not_of(" \t"), e = pattern.find_last_not_of(" \t");
    if (b != std::string::npos && glob_match(pattern.substr(b, e - b + 1).c_str(), image.c_str()))
      return true;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return false;
}

int compare_api_versions(const std::string& a, const std::string& b) {
  auto parts = [](const std::string& v) {
    std::size_t dot = v.find('.');
    int major = std::atoi(v.substr(0, dot).c_str());
    int minor = dot == std::string::npos ? 0 : std::atoi(v.substr(dot + 1).c_str());
    return std::make_pair(major, minor);
  };
  auto pa = parts(a), pb = parts(b);
  return pa < pb ? -1 : (pa > pb ? 1 : 0);
}

std::string negotiate_api_version(const json& answer) {
  if (!answer.is_object() || !answer.contains("ApiVersion") || !answer["ApiVersion"].is_string())
    throw UserError("the Docker engine's /version answer has no ApiVersion");
  std::string engine_max = answer["ApiVersion"].get<std::string>();
  std::string engine_min = answer.value("MinAPIVersion", std::string(kClientMinApi));
  std::string chosen = compare_api_versions(engine_max, kClientMaxApi) < 0 ? engine_max : kClientMaxApi;
  if (compare_api_versions(chosen, engine_min) < 0 || compare_api_versions(chosen, kClientMinApi) < 0)
    throw UserError("no Docker API version in common: the engine speaks " + engine_min + " to " +
                        engine_max + ", pg_orchestration " + kClientMinApi + " to " + kClientMaxApi,
                    {}, "Use Docker 20.10 or later.");
  return chosen;
}

}  // namespace orch::docker
