// One attempt of a container agent, start to end: create (sandboxed, labelled), attach,
// start, write the input to stdin and close it, read stdout and stderr until the
// container ends (killing it at the timeout, on cancel, or as soon as its stdout passes
// max_output_bytes), read its exit code and OOM state. Memory per attempt stays within
// max_output_bytes + about 2 x max_log_bytes + one 64 KiB read buffer, whatever the agent
// writes. Every failure becomes a message for the node, never an exception. The container
// is left in place: the caller removes it (remove_container_quietly) once the result is
// safely recorded, so a crash in between finds it and collects it again.
#pragma once

#include <atomic>
#include <string>

#include "core/docker/container_config.hpp"
#include "core/docker/docker_client.hpp"

namespace orch::docker {

struct AttemptLimits {
  int timeout_seconds = 300;
  std::size_t max_output_bytes = 1 << 20;
  std::size_t max_log_bytes = 64 << 10;
};

// What may end an attempt before its container ends. `cancel`: its run was cancelled, the
// container is killed (outcome.cancelled). `leave`: the scheduler is going away, the
// container is left as it is (outcome.left) for crash recovery to collect; the attempt
// returns at its next look (within a second), or once the engine call under way ends.
struct StopFlags {
  std::atomic<bool> cancel{false};
  std::atomic<bool> leave{false};
};

struct AttemptOutcome {
  bool succeeded = false;
  std::string output;  // the JSON document the agent wrote, when it parsed
  std::string error;   // why the attempt failed: says which, with the exit code and log tail
  long exit_code = -1;
  std::string log_tail;
  std::string container_id;
  bool timed_out = false, oom_killed = false, cancelled = false;
  bool left = false;  // stop.leave: the container was left running; this is no result
  bool lost = false;  // adopt_container: the container was never created or started; nothing ran
  // Its stdout passed max_output_bytes while it ran: reading stopped there and the
  // container was killed (its exit code is the kill's, not its own).
  bool stopped_for_output = false;
};

AttemptOutcome run_container_attempt(DockerClient& client, const ContainerRequest& request,
                                     const Ceilings& ceilings, const std::string& input,
                                     const AttemptLimits& limits, const StopFlags& stop);

// Crash recovery: the outcome of a container this attempt created before the scheduler
// died. Waits for it (killing it at the timeout or on stop.cancel), reads its exit code, state
// and logs (stdout up to one byte past the cap, stderr's tail: never the whole log),
// judges them like a live attempt, and removes it. A container that no longer
// exists was never created (its attempt was interrupted before that): `lost`.
AttemptOutcome adopt_container(DockerClient& client, const std::string& name, const AttemptLimits& limits,
                               std::int64_t pids_limit, std::int64_t memory_mb,
                               const StopFlags& stop);

// Removes a container whose result is recorded; if the engine cannot, crash recovery will
// (it removes containers of ours that no node waits for).
void remove_container_quietly(DockerClient& client, const std::string& container_id);

// The outcome from a finished container's exit code, state and output (stdout and stderr,
// already separated): shared by the attempt above and by crash recovery, which collects
// containers that finished while the scheduler was down. `output_too_large`: stdout passed
// max_output_bytes (outcome.stopped_for_output: and the container was stopped for it).
void judge_outcome(AttemptOutcome& outcome, const std::string& stdout_text, bool output_too_large,
                   const AttemptLimits& limits, std::int64_t pids_limit, std::int64_t memory_mb);

}  // namespace orch::docker
