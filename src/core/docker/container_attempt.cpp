#include "core/docker/container_attempt.hpp"

#include "core/common/json_limits.hpp"

#include "core/docker/stream_demux.hpp"

namespace orch::docker {
namespace {

std::string tail_note(const std::string& log_tail) {
  if (log_tail.empty()) return "";
  std::string tail = log_tail.size() > 500 ? "..." + log_tail.substr(log_tail.size() - 500) : log_tail;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
  return "; log tail: " + tail;
}

// What each turn of an attempt's watching loops asks first: the scheduler is going away
// (leave the container running for crash recovery: the outcome says so), the attempt was
// cancelled or ran out of time (the outcome says which), or neither.
enum class Interrupted { no, leave, end };

Interrupted interrupted(const StopFlags& stop, Clock::time_point deadline,
                        AttemptOutcome& outcome) {
  if (stop.leave.load()) {
    outcome.left = true;
    outcome.error = "the scheduler stopped while the container ran; crash recovery collects it";
    return Interrupted::leave;
  }
  if (stop.cancel.load() || Clock::now() >= deadline) {
    (stop.cancel.load() ? outcome.cancelled : outcome.timed_out) = true;
    return Interrupted::end;
  }
  return Interrupted::no;
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
  } else if (outcome.stopped_for_output) {
    // Before the exit code: that is our kill's (137), not the agent's doing.
    outcome.error = "its output is larger than orchestration.max_output_bytes (" +
                    std::to_string(limits.max_output_bytes) + " bytes); the container was stopped" + note;
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
    // Nesting is limited before anything recurses over the document (dump() does): a
    // container printing [[[[... 100,000 deep fails its attempt, not the scheduler.
    try {
      outcome.output = parse_json_limited(stdout_text).dump();
      outcome.succeeded = true;
    } catch (const std::exception& e) {  // a UserError (syntax, depth, a number beyond a double)
      std::string start = stdout_text.substr(0, 80);
      outcome.error = "its output is not a JSON document we can take: " + std::string(e.what()) +
                      " (stdout began: \"" + start + "\")" + note;
    }
  }
}

AttemptOutcome adopt_container(DockerClient& client, const std::string& name, const AttemptLimits& limits,
                               std::int64_t pids_limit, std::int64_t memory_mb,
                               const StopFlags& stop) {
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
      Interrupted why = interrupted(stop, deadline, outcome);
      if (why == Interrupted::leave) return outcome;
      if (why == Interrupted::end) {
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
    // The logs may be gigabytes (the engine keeps them on disk): read them as a stream,
    // stdout only up to one byte past the cap, then stderr's tail.
    OutputCapture capture(limits.max_output_bytes, limits.max_log_bytes);
    StreamDemux out_demux;
    client.container_logs(outcome.container_id, "stdout=1&stderr=0", [&](std::string_view bytes) {
      out_demux.feed(bytes, [&](Stream stream, std::string_view b) { capture.add(stream, b); });
      return !capture.output_too_large();
    });
    if (limits.max_log_bytes > 0) {
      // `tail` counts log entries of both streams, one frame each and each at least one
      // byte: the last (stdout's entries + max_log_bytes) of them hold the last
      // max_log_bytes of stderr, and bound what the engine sends when stderr is huge. (When
      // stdout was cut at its cap, its entries after the cut are not counted: the tail may
      // then come up short, for an attempt that fails anyway.)
      std::string tail = std::to_string(out_demux.frames() + limits.max_log_bytes + 1);
      OutputCapture log(0, limits.max_log_bytes);
      StreamDemux err_demux;
      try {
        client.container_logs(outcome.container_id, "stdout=0&stderr=1&tail=" + tail, [&](std::string_view bytes) {
          err_demux.feed(bytes, [&](Stream stream, std::string_view b) { log.add(stream, b); });
          return true;
        });
        outcome.log_tail = log.log_tail();
      } catch (const std::exception& e) {
        // The result is known without the log: judge it, and say why there is no tail.
        outcome.log_tail = std::string("(its log could not be read: ") + e.what() + ")";
      }
    }
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
                                     const AttemptLimits& limits, const StopFlags& stop) {
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
    // One read buffer for the whole attempt: what is read is handed on (and counted against
    // the caps) at once, so memory is the capture's plus this.
    std::string chunk;
    chunk.reserve(64 << 10);
    while (true) {
      Interrupted why = interrupted(stop, deadline, outcome);
      if (why == Interrupted::leave) return outcome;
      if (why == Interrupted::end) break;
      chunk.clear();
      auto until = std::min(deadline, Clock::now() + std::chrono::milliseconds(200));
      bool open = attachment->receive(chunk, until);
      if (!chunk.empty()) demux.feed(chunk, sink);
      if (capture.output_too_large()) {
        // The output already fails the attempt: stop it now rather than read on to its end
        // or the timeout. Nothing more is read; stderr's tail is what came before.
        outcome.stopped_for_output = true;
        break;
      }
      if (!open) break;
    }
    // Hang up before a kill: the engine finishes a container's exit only once it has copied
    // its output to the attached clients, so a kill while we do not read can wait on a copy
    // that never ends (seen here: the kill call timed out after 60 s). What the agent wrote
    // between the last read and the kill is lost; it is being stopped anyway.
    attachment.reset();
    if (outcome.cancelled || outcome.timed_out || outcome.stopped_for_output) client.kill_container(outcome.container_id);
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
