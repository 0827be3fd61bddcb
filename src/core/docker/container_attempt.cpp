#include "core/docker/container_attempt.hpp"

#include "core/docker/stream_demux.hpp"

namespace orch::docker {
namespace {

std::string tail_note(const std::string& log_tail) {
  if (log_tail.empty()) return "";
  std::string tail = log_tail.size() > 500 ? "..." + log_tail.substr(log_tail.size() - 500) : log_tail;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
  return "; log tail: " + tail;
}

}  // namespace

void remove_container_quietly(DockerClient& client, const std::string& container_id) {
  if (container_id.empty()) return;
  try {
    client.remove_container(container_id);
  } catch (const std::exception&) {
  }
}

void judge_outcome(AttemptOutcome& outcome, const std::string& stdout_text, bool output_too_large,
                   const AttemptLimits& limits, std::int64_t pids_limit, std::int64_t memory_mb) {
  std::string note = tail_note(outcome.log_tail);
  if (outcome.cancelled) {
    outcome.error = "cancelled: the container was killed";
  } else if (outcome.timed_out) {
    outcome.error = "timed out after " + std::to_string(limits.timeout_seconds) + " s: the container was killed" + note;
  } else if (outcome.oom_killed) {
    outcome.error = "killed for running out of memory (limit " + std::to_string(memory_mb) + " MB)" + note;
  } else if (outcome.exit_code != 0) {
    bool out_of_processes = outcome.log_tail.find("Resource temporarily unavailable") != std::string::npos ||
                            outcome.log_tail.find("can't fork") != std::string::npos;
    outcome.error = "exited with code " + std::to_string(outcome.exit_code) +
                    (out_of_processes ? " after hitting its limit of " + std::to_string(pids_limit) + " processes" : "") +
                    note;
  } else if (output_too_large) {
    outcome.error = "its output is larger than orchestration.max_output_bytes (" +
                    std::to_string(limits.max_output_bytes) + " bytes)" + note;
  } else {
    auto parsed = json::parse(stdout_text, nullptr, false);
    if (parsed.is_discarded()) {
      std::string start = stdout_text.substr(0, 80);
      outcome.error = "its output is not a JSON document (stdout began: \"" + start + "\")" + note;
    } else {
      outcome.succeeded = true;
      outcome.output = parsed.dump();
    }
  }
}

AttemptOutcome adopt_container(DockerClient& client, const std::string& name, const AttemptLimits& limits,
                               std::int64_t pids_limit, std::int64_t memory_mb,
                               const std::atomic<bool>& cancel) {
  AttemptOutcome outcome;
  try {
    json info = client.inspect_container(name);
    if (info["State"].value("Status", "") == "created") {
      // Made but never started: nothing ran. The attempt starts again and takes this
      // container over (run_container_attempt reuses a created container of its name).
      outcome.lost = true;
      outcome.error = "the scheduler stopped before it started the container " + name;
      return outcome;
    }
    outcome.container_id = info.value("Id", name);
    auto deadline = Clock::now() + std::chrono::seconds(limits.timeout_seconds);
    while (info["State"].value("Running", false)) {
      if (cancel.load() || Clock::now() >= deadline) {
        (cancel.load() ? outcome.cancelled : outcome.timed_out) = true;
        client.kill_container(outcome.container_id);
        break;
      }
      try {
        client.wait_container(outcome.container_id, std::chrono::seconds(1));
      } catch (const EngineError&) {
        // still running after a second: look again
      }
      info = client.inspect_container(outcome.container_id);
    }
    outcome.exit_code = client.wait_container(outcome.container_id, std::chrono::seconds(30));
    outcome.oom_killed = client.inspect_container(outcome.container_id)["State"].value("OOMKilled", false);
    StreamDemux demux;
    OutputCapture capture(limits.max_output_bytes, limits.max_log_bytes);
    demux.feed(client.container_logs(outcome.container_id),
               [&](Stream stream, std::string_view bytes) { capture.add(stream, bytes); });
    outcome.log_tail = capture.log_tail();
    judge_outcome(outcome, capture.output(), capture.output_too_large(), limits, pids_limit, memory_mb);
  } catch (const EngineError& e) {
    outcome.lost = e.status() == 404 && outcome.container_id.empty();
    outcome.error = outcome.lost ? "the scheduler stopped before it created the container " + name
                                 : std::string("the container could not be recovered: ") + e.what();
  } catch (const std::exception& e) {
    outcome.error = std::string("the container could not be recovered: ") + e.what();
  }
  return outcome;
}

AttemptOutcome run_container_attempt(DockerClient& client, const ContainerRequest& request,
                                     const Ceilings& ceilings, const std::string& input,
                                     const AttemptLimits& limits, const std::atomic<bool>& cancel) {
  AttemptOutcome outcome;
  std::string name = container_name(request.id);
  json body = create_body(request, ceilings);
  std::int64_t memory_mb = std::min(request.memory_mb, ceilings.memory_mb);
  std::int64_t pids = std::min(request.pids, ceilings.pids);
  try {
    try {
      outcome.container_id = client.create_container(name, body);
    } catch (const EngineError& e) {
      if (e.status() != 409) throw;
      // A container of this very attempt exists, left by a scheduler that stopped. If it
      // was never started, nothing ran: take it over. Otherwise start afresh.
      json existing = client.inspect_container(name);
      if (existing["State"].value("Status", "") == "created") {
        outcome.container_id = existing.value("Id", name);
      } else {
        client.remove_container(name);
        outcome.container_id = client.create_container(name, body);
      }
    }
    auto attachment = client.attach(outcome.container_id);
    client.start_container(outcome.container_id);
    auto deadline = Clock::now() + std::chrono::seconds(limits.timeout_seconds);
    attachment->send_all(input, deadline);
    attachment->close_input();

    StreamDemux demux;
    OutputCapture capture(limits.max_output_bytes, limits.max_log_bytes);
    auto sink = [&](Stream stream, std::string_view bytes) { capture.add(stream, bytes); };
    bool killed = false;
    while (true) {
      if (!killed && (cancel.load() || Clock::now() >= deadline)) {
        (cancel.load() ? outcome.cancelled : outcome.timed_out) = true;
        client.kill_container(outcome.container_id);
        killed = true;
        deadline = Clock::now() + std::chrono::seconds(10);  // to read what is left
      } else if (killed && Clock::now() >= deadline) {
        break;
      }
      std::string chunk;
      auto until = std::min(deadline, Clock::now() + std::chrono::milliseconds(200));
      bool open = attachment->receive(chunk, until);
      if (!chunk.empty()) demux.feed(chunk, sink);
      if (!open) break;
    }
    outcome.exit_code = client.wait_container(outcome.container_id, std::chrono::seconds(30));
    json state = client.inspect_container(outcome.container_id).value("State", json::object());
    outcome.oom_killed = state.value("OOMKilled", false);
    outcome.log_tail = capture.log_tail();
    judge_outcome(outcome, capture.output(), capture.output_too_large(), limits, pids, memory_mb);
  } catch (const std::exception& e) {
    outcome.succeeded = false;
    outcome.error = std::string("the container could not run: ") + e.what();
  }
  return outcome;
}

}  // namespace orch::docker
