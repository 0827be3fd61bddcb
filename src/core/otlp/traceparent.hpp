// W3C trace context (https://www.w3.org/TR/trace-context/): the traceparent of a new span.
// Postgres-free; orchestration.child_traceparent() is its SQL face (a run's span in its
// caller's trace, each node attempt's span in its run's trace).
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace orch::otlp {

// "00-<32 lowercase hex: trace id>-<16: span id>-<2: flags>", the trace id not all zeros.
bool valid_traceparent(std::string_view traceparent);

// A sampled traceparent ("-01") for a new span: in parent's trace when parent is a valid
// traceparent, else in a new trace. `random` supplies the new ids: the first 16 bytes a
// new trace id (used only when there is no valid parent), the last 8 the span id. An id
// that came out all zeros (which W3C forbids) gets its last bit set.
std::string child_traceparent(std::string_view parent, const std::array<unsigned char, 24>& random);

}  // namespace orch::otlp
