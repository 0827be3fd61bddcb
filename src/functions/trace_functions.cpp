// SQL-callable functions of tracing that run once per attempt in the scheduler's hot path
// (record_attempts, the attempt_spans trigger's WHEN): in C, because as SQL or PL/pgSQL
// they cost a chain step about a twentieth of its time.
#include "pg/boundary.hpp"

extern "C" {
#include "utils/builtins.h"
}

#include <array>
#include <string>

#include "config/gucs.hpp"
#include "core/otlp/traceparent.hpp"
#include "pg/jsonb.hpp"
#include "pg/strong_random.hpp"

// tracing_enabled() returns boolean: whether orchestration.otlp_endpoint is set (spans are
// then queued for the relay to send)
ORCH_SQL_FUNCTION(orch_tracing_enabled) {
  const char* endpoint = orch::config::otlp_endpoint;
  return BoolGetDatum(endpoint != nullptr && endpoint[0] != '\0');
}

// child_traceparent(parent text) returns text: a new span's traceparent, in parent's trace
// when parent is a valid traceparent (NULL or anything else: a new trace)
ORCH_SQL_FUNCTION(orch_child_traceparent) {
  std::string parent = orch::pg::guard([&] { return !PG_ARGISNULL(0); }) ? orch::pg::arg_text(fcinfo, 0) : "";
  std::array<unsigned char, 24> random{};
  orch::pg::strong_random(random.data(), random.size());
  return orch::pg::text_datum(orch::otlp::child_traceparent(parent, random));
}
