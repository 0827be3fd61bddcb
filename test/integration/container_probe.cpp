// Runs one container attempt through the executor's core (DockerClient +
// run_container_attempt) and prints the outcome as JSON, for the integration tests:
//   container_probe IMAGE TIMEOUT_S MEMORY_MB PIDS MAX_OUTPUT ALLOW_NETWORK [COMMAND...] < input
// Environment: PROBE_ATTEMPT (1), PROBE_CLUSTER ("1"), PROBE_DATABASE ("probe"),
// PROBE_LOG_BYTES (max_log_bytes, 200), PROBE_SECRET (a secret of that name),
// PROBE_ADOPT=NAME (crash recovery instead: adopt_container of the container NAME).
// Besides the outcome it prints the container's name and labels, the names that
// ours_filters(cluster, database) lists while it still exists, the elapsed time and the
// probe's peak RSS (getrusage), so tests can bound the memory a hostile agent costs us.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>

#include "core/docker/container_attempt.hpp"

namespace {

const char* env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value ? value : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s IMAGE TIMEOUT_S MEMORY_MB PIDS MAX_OUTPUT ALLOW_NETWORK [COMMAND...]\n", argv[0]);
    return 2;
  }
  using namespace orch::docker;
  auto started = std::chrono::steady_clock::now();
  ContainerRequest request;
  request.id = {env_or("PROBE_DATABASE", "probe"), 1, 1, 1, "probe", std::atoi(env_or("PROBE_ATTEMPT", "1")),
                env_or("PROBE_CLUSTER", "1")};
  request.image = argv[1];
  request.memory_mb = std::atoll(argv[3]);
  request.pids = std::atoll(argv[4]);
  request.allow_network = std::string(argv[6]) == "1";
  for (int i = 7; i < argc; ++i) request.command.push_back(argv[i]);
  if (const char* secret = std::getenv("PROBE_SECRET")) request.secrets["PROBE_SECRET"] = secret;
  AttemptLimits limits;
  limits.timeout_seconds = std::atoi(argv[2]);
  limits.max_output_bytes = std::strtoul(argv[5], nullptr, 10);
  limits.max_log_bytes = std::strtoul(env_or("PROBE_LOG_BYTES", "200"), nullptr, 10);
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  DockerClient client(EngineAddress{});
  StopFlags stop;
  const char* adopt = std::getenv("PROBE_ADOPT");
  AttemptOutcome outcome = adopt ? adopt_container(client, adopt, limits, request.pids, request.memory_mb, stop)
                                 : run_container_attempt(client, request, Ceilings{}, input, limits, stop);
  nlohmann::json name = nullptr, labels = nullptr, ours = nlohmann::json::array();
  if (!outcome.container_id.empty()) {
    try {
      nlohmann::json info = client.inspect_container(outcome.container_id);
      name = info.value("Name", "");
      labels = info["Config"]["Labels"];
      for (const auto& c : client.list_containers(ours_filters(request.id.cluster, request.id.database)))
        ours.push_back(c["Names"].empty() ? "" : c["Names"][0].get<std::string>());
    } catch (const std::exception& e) {
      name = std::string("(inspect failed: ") + e.what() + ")";
    }
  }
  remove_container_quietly(client, outcome.container_id);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  nlohmann::json out = {{"succeeded", outcome.succeeded}, {"error", outcome.error}, {"exit_code", outcome.exit_code},
                        {"log_tail", outcome.log_tail}, {"timed_out", outcome.timed_out},
                        {"oom_killed", outcome.oom_killed}, {"output_bytes", outcome.output.size()},
                        {"output", outcome.output.size() < 2000 ? nlohmann::json::parse(outcome.output.empty() ? "null" : outcome.output)
                                                                : nlohmann::json("(long)")},
                        {"name", name}, {"labels", labels}, {"ours", ours},
                        {"max_rss_kb", usage.ru_maxrss},  // Linux: kilobytes
                        {"elapsed_ms", elapsed.count()}};
  std::cout << out.dump() << std::endl;
  return 0;
}
