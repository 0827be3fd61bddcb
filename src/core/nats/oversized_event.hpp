// Events too large for NATS. A server refuses a message larger than its max_payload (it
// announces the figure when a client connects; 1 MiB by default); an event that big (a
// large output, say) would stop the relay at that event for ever, and every later event
// of every project with it. Such an event is published in a reduced form instead: the
// CloudEvents envelope, the identifying fields of its data and a pointer to the outbox
// row that keeps it whole.
#pragma once

#include <cstdint>
#include <string>

namespace orch::nats {

// Room kept for the headers (Nats-Msg-Id, Content-Type) and the protocol line.
inline constexpr std::size_t kHeaderAllowance = 1024;

// Whether a payload of `size` bytes fits a server whose max_payload is `max_payload`
// (0: not known yet, so it is assumed to fit).
bool fits(std::size_t size, std::int64_t max_payload);

// The reduced form of the CloudEvents document `payload`, stored as outbox row
// `event_row`: id, source, type, subject, time and specversion as they were; of data,
// only project_id, run_id, node_key, status and attempt; then "truncated": true, the original
// size, and "dataref": "orchestration.events/<event_row>" (the CloudEvents dataref
// extension) saying where the whole event is. Small whatever the input (a payload that
// does not parse still gives a valid document).
std::string reduced_event(const std::string& payload, std::int64_t event_row);

}  // namespace orch::nats
