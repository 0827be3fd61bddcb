// Random bytes from the server's cryptographically strong source (pg_strong_random), drawn
// a block at a time: each call of pg_strong_random costs a system call (OpenSSL checks the
// process id for a fork), about as much as the rest of building an event's document, and
// every event id and trace id needs one. A strong source, not pg_prng: an event's id is its
// NATS message id, which JetStream de-duplicates by, so an id someone could predict is an
// event someone could suppress.
#pragma once

#include <cstddef>

namespace orch::pg {

// Fills `out` with `size` strong random bytes (at most 64 a call); throws if the source
// fails. Bytes are handed out once: never to two callers, nor to a forked child (the
// block is drawn again in a process whose id differs from the one that drew it).
void strong_random(unsigned char* out, std::size_t size);

}  // namespace orch::pg
