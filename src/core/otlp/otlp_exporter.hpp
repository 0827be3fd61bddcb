// Sending spans to an OpenTelemetry collector: OTLP over HTTP with the JSON encoding
// (POST <endpoint>, Content-Type: application/json, an ExportTraceServiceRequest).
// Postgres-free. The relay reads the spans from span_queue on its main thread and hands
// them to an ExportThread, which POSTs them on a thread of its own: a collector that is
// slow or never answers holds back spans only, never the events the relay publishes.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/threads/thread_handoff.hpp"
#include "core/threads/thread_owner.hpp"

namespace orch::otlp {

// An ExportTraceServiceRequest holding the given spans (each already one OTLP/JSON span
// object, as orchestration.otlp_span() writes it) under one resource: service.name
// "pg_orchestration" and the database they come from.
std::string export_request(const std::vector<std::string>& spans, const std::string& database);

struct Delivery {
  bool accepted = false;  // HTTP 2xx: the collector took them (OTLP: do not send again)
  std::string problem;    // why not, for the log
};

// POSTs an export request; waits at most timeout_ms (connecting: at most a second of it),
// less if `abort` becomes true meanwhile.
Delivery send(const std::string& endpoint, const std::string& request, long timeout_ms,
              const std::atomic<bool>* abort = nullptr);

// One batch of spans: their span_queue ids and the request that carries them.
struct Batch {
  std::vector<std::int64_t> ids;
  std::string endpoint, request;
  long timeout_ms = 5000;
};

struct Sent {
  std::vector<std::int64_t> ids;  // the batch's: forget them if the delivery was accepted
  Delivery delivery;
};

// Sends one batch at a time off the relay's main thread: offer() starts a thread for the
// batch (one at a time: the next is refused until the outcome is taken) and returns at
// once; when it is sent (or failed), a byte in wake_fd() says so and take_result() hands
// the outcome back. The destructor aborts a request under way and
// joins the thread. Every member function belongs to the main thread.
class ExportThread {
 public:
  ExportThread();
  ~ExportThread();
  ExportThread(const ExportThread&) = delete;
  ExportThread& operator=(const ExportThread&) = delete;

  int wake_fd() const { return wake_.fd(); }
  // A batch was offered and its result not yet taken: offer() would refuse another.
  bool busy() const { return busy_; }
  // Starts sending `batch`; false (and nothing done) while busy().
  bool offer(Batch batch);
  // The outcome of the batch offered, once it is known.
  std::optional<Sent> take_result();

 private:
  bool busy_ = false;  // the main thread's own: no lock
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::optional<Sent> result_;  // set by the export thread, taken by the main thread
  threads::WakePipe wake_;
  threads::ThreadOwner threads_;  // last: joined before the members above go
};

}  // namespace orch::otlp
