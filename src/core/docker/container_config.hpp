// What a container agent's attempt asks the Docker engine for: the create body with the
// sandbox, the deterministic name and the labels that crash recovery finds it by, the
// image allowlist, and the API version both sides speak.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace orch::docker {

using json = nlohmann::json;

// The attempt a container belongs to; also its name and labels.
struct AttemptId {
  std::string database;
  std::int64_t project = 0, run = 0, node = 0;  // node: the run node's id
  std::string node_key;
  int attempt = 0;
  // The PostgreSQL cluster (its system identifier): several clusters may share one engine,
  // with the same database names, and must neither meet nor remove each other's containers.
  // Last, with an initialiser, so that initialisers that predate it still compile (and
  // -Wmissing-field-initializers stays quiet about them).
  std::string cluster = {};
};

// The upper bounds an agent spec may not exceed on this server (GUCs).
struct Ceilings {
  std::int64_t memory_mb = 65536;
  double cpus = 64;
  std::int64_t pids = 32768;
  bool allow_network = true;  // false: no agent gets a network, whatever its spec says
};

struct ContainerRequest {
  AttemptId id;
  std::string image;
  std::optional<std::string> entry_path;
  std::vector<std::string> command;
  std::map<std::string, std::string> env;      // the agent's env
  std::map<std::string, std::string> secrets;  // name -> value, from the secrets table
  std::string traceparent;
  std::int64_t memory_mb = 256;
  double cpus = 1;
  std::int64_t pids = 128;
  bool allow_network = false;
  std::int64_t tmpfs_mb = 64;
  std::string user = "65534:65534";  // nobody
};

// "orch-<cluster>-<database>-r<run>-<node_key>-a<attempt>": the same attempt always has
// the same name, so a create after a crash meets the container it already made (409); the
// cluster keeps two clusters' attempts of the same database, run and node apart.
std::string container_name(const AttemptId& id);

// Labels on every container: what crash recovery lists and matches with node rows.
inline constexpr const char* kLabelManaged = "orchestration.managed";
inline constexpr const char* kLabelCluster = "orchestration.cluster";
inline constexpr const char* kLabelDatabase = "orchestration.database";
inline constexpr const char* kLabelProject = "orchestration.project";
inline constexpr const char* kLabelRun = "orchestration.run";
inline constexpr const char* kLabelNode = "orchestration.node";
inline constexpr const char* kLabelNodeKey = "orchestration.node_key";
inline constexpr const char* kLabelAttempt = "orchestration.attempt";

// The label filters (all must match) that select this cluster's containers of `database`:
// for DockerClient::list_containers, in crash recovery.
std::vector<std::string> ours_filters(const std::string& cluster, const std::string& database);

// The POST /containers/create body: the sandbox (no network unless allowed, read-only
// root with a small /tmp tmpfs, every capability dropped, no-new-privileges, pids,
// memory without swap, CPU, a non-root user), stdin open for the input, the labels, and
// the environment (env, secrets, TRACEPARENT). Limits are clamped to `ceilings`.
json create_body(const ContainerRequest& request, const Ceilings& ceilings);

// Whether `image` matches one of the comma-separated glob patterns ('*' any run of
// characters, '?' one). An empty list allows nothing.
bool image_allowed(const std::string& image, const std::string& patterns);

// The API version to use with an engine, from its GET /version answer: the highest both
// speak (the engine's ApiVersion, at most kClientMaxApi), and never below the engine's
// MinAPIVersion or kClientMinApi. Throws UserError when there is none.
inline constexpr const char* kClientMinApi = "1.41";
inline constexpr const char* kClientMaxApi = "1.45";
std::string negotiate_api_version(const json& version_answer);

// Compares "1.41" and "1.45" as versions: negative, zero or positive.
int compare_api_versions(const std::string& a, const std::string& b);

}  // namespace orch::docker
