// The raw container baseline for test/bench/scheduler_bench.sh, measured the way the
// scheduler runs containers: one process, CONCURRENCY threads, each running attempts
// through the same core (DockerClient + run_container_attempt: create, attach, start,
// wait, logs) and removing the container after, until COUNT have run. No process start
// per container (xargs -P did that, and charged the baseline for it).
//
//   container_batch IMAGE COUNT CONCURRENCY [COMMAND...]
//
// Prints the seconds from the first create to the last removal; exits non-zero if any
// attempt did not succeed.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/docker/container_attempt.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s IMAGE COUNT CONCURRENCY [COMMAND...]\n", argv[0]);
    return 2;
  }
  using namespace orch::docker;
  const std::string image = argv[1];
  const int count = std::atoi(argv[2]);
  const int concurrency = std::atoi(argv[3]);
  std::vector<std::string> command(argv + 4, argv + argc);
  std::atomic<int> next{0}, failed{0};
  StopFlags stop;
  auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t)
    threads.emplace_back([&] {
      DockerClient client(EngineAddress{});
      for (int i = next++; i < count; i = next++) {
        ContainerRequest request;
        // Its own names: attempt numbers no scheduler uses.
        request.id = {"bench", 1, 1, 1, "batch", 100000 + i, "bench"};
        request.image = image;
        request.command = command;
        AttemptLimits limits;
        limits.timeout_seconds = 60;
        limits.max_output_bytes = 1 << 20;
        limits.max_log_bytes = 200;
        AttemptOutcome outcome = run_container_attempt(client, request, Ceilings{}, std::to_string(i), limits, stop);
        if (!outcome.succeeded) {
          ++failed;
          std::fprintf(stderr, "container %d: %s\n", i, outcome.error.c_str());
        }
        remove_container_quietly(client, outcome.container_id);
      }
    });
  for (auto& thread : threads) thread.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("%.3f\n", seconds);
  return failed == 0 ? 0 : 1;
}
