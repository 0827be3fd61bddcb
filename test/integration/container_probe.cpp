// Runs one container attempt through the executor's core (DockerClient +
// run_container_attempt) and prints the outcome as JSON, for the integration tests:
//   container_probe IMAGE TIMEOUT_S MEMORY_MB PIDS MAX_OUTPUT ALLOW_NETWORK [COMMAND...] < input
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "core/docker/container_attempt.hpp"

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s IMAGE TIMEOUT_S MEMORY_MB PIDS MAX_OUTPUT ALLOW_NETWORK [COMMAND...]\n", argv[0]);
    return 2;
  }
  using namespace orch::docker;
  ContainerRequest request;
  request.id = {"probe", 1, 1, 1, "probe", std::atoi(std::getenv("PROBE_ATTEMPT") ? std::getenv("PROBE_ATTEMPT") : "1")};
  request.image = argv[1];
  request.memory_mb = std::atoll(argv[3]);
  request.pids = std::atoll(argv[4]);
  request.allow_network = std::string(argv[6]) == "1";
  for (int i = 7; i < argc; ++i) request.command.push_back(argv[i]);
  if (const char* secret = std::getenv("PROBE_SECRET")) request.secrets["PROBE_SECRET"] = secret;
  AttemptLimits limits;
  limits.timeout_seconds = std::atoi(argv[2]);
  limits.max_output_bytes = std::strtoul(argv[5], nullptr, 10);
  limits.max_log_bytes = 200;
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  DockerClient client(EngineAddress{});
  std::atomic<bool> cancel{false};
  AttemptOutcome outcome = run_container_attempt(client, request, Ceilings{}, input, limits, cancel);
  remove_container_quietly(client, outcome.container_id);
  nlohmann::json out = {{"succeeded", outcome.succeeded}, {"error", outcome.error}, {"exit_code", outcome.exit_code},
                        {"log_tail", outcome.log_tail}, {"timed_out", outcome.timed_out},
                        {"oom_killed", outcome.oom_killed}, {"output_bytes", outcome.output.size()},
                        {"output", outcome.output.size() < 2000 ? nlohmann::json::parse(outcome.output.empty() ? "null" : outcome.output)
                                                                : nlohmann::json("(long)")}};
  std::cout << out.dump() << std::endl;
  return 0;
}
