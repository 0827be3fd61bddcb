// The container executor: each in-flight container attempt runs on a thread of its own
// (at most orchestration.max_concurrent_nodes of them: the scheduler claims no more),
// talking to the Docker engine with its own client; so does each batch of removals. The
// executor owns these threads (threads::ThreadOwner): a finished one is joined at the
// next launch, and the executor's destructor tells the attempts under way to leave their
// containers to crash recovery and joins every thread before anything they use is gone.
// Threads never call Postgres: a finished attempt goes into a queue, and a byte into a
// pipe whose read end the scheduler's WaitLatch watches, so the main thread records it
// at once. Every member function belongs to the main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/docker/container_attempt.hpp"
#include "core/threads/thread_handoff.hpp"
#include "core/threads/thread_owner.hpp"

namespace orch::executors {

struct ContainerJob {
  std::int64_t node_id = 0;
  bool adopt = false;  // crash recovery: collect the container this attempt already made
  std::string adopt_name;  // its name as the node row recorded it (names changed in 0.2)
  docker::ContainerRequest request;
  docker::Ceilings ceilings;
  docker::AttemptLimits limits;
  docker::EngineAddress address;
  std::string input;
  std::string started_at;  // timestamptz text
  std::string capability_id, contract_version, capability;  // for the output contract
};

struct FinishedJob {
  ContainerJob job;
  docker::AttemptOutcome outcome;
  std::string finished_at;  // ISO 8601, UTC
};

class ContainerExecutor {
 public:
  ContainerExecutor();
  // Attempts under way leave their containers running (crash recovery collects them when
  // a scheduler starts again); waits for every thread to end, about a second at most
  // unless an engine call is under way (each has its own timeout).
  ~ContainerExecutor();
  ContainerExecutor(const ContainerExecutor&) = delete;
  ContainerExecutor& operator=(const ContainerExecutor&) = delete;

  int wake_fd() const { return wake_.fd(); }
  void launch(ContainerJob job);
  std::vector<FinishedJob> take_finished();
  std::vector<std::int64_t> in_flight() const;
  void cancel(std::int64_t node_id);
  // Removes containers whose results are committed, on a thread of its own.
  void remove_later(std::vector<std::string> container_ids, docker::EngineAddress address);

 private:
  void finish(FinishedJob finished);

  mutable std::mutex mutex_;
  std::vector<FinishedJob> finished_;
  std::map<std::int64_t, std::shared_ptr<docker::StopFlags>> running_;  // node -> how to stop it
  threads::WakePipe wake_;
  // Last: destroyed first, so its threads are joined while the members above still exist.
  threads::ThreadOwner threads_;
};

}  // namespace orch::executors
