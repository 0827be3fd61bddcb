// Sending spans to an OpenTelemetry collector: OTLP over HTTP with the JSON encoding
// (POST <endpoint>, Content-Type: application/json, an ExportTraceServiceRequest).
// Postgres-free: the relay reads the spans from span_queue and calls this between
// transactions.
#pragma once

#include <string>
#include <vector>

namespace orch::otlp {

// An ExportTraceServiceRequest holding the given spans (each already one OTLP/JSON span
// object, as orchestration.otlp_span() writes it) under one resource: service.name
// "pg_orchestration" and the database they come from.
std::string export_request(const std::vector<std::string>& spans, const std::string& database);

struct Delivery {
  bool accepted = false;  // HTTP 2xx: the collector took them (OTLP: do not send again)
  std::string problem;    // why not, for the log
};

// POSTs an export request; waits at most timeout_ms (connecting: at most a second of it).
Delivery send(const std::string& endpoint, const std::string& request, long timeout_ms);

}  // namespace orch::otlp
