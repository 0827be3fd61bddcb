// The parts of an outbox event's CloudEvents 1.0 document that are not plain copies of its
// columns: its id and its time, as text. Postgres-free; orchestration.event_document() is
// their SQL face (src/functions/event_functions.cpp), which builds the document itself.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace orch::events {

// A random (version 4) UUID in its 36-character lowercase form, from 16 random bytes: the
// same form gen_random_uuid()::text gives.
std::string uuid_text(std::array<unsigned char, 16> random);

// An instant, in microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's timestamptz; before
// it: negative), as RFC 3339 in UTC with microseconds, "2026-12-04T06:10:34.000123Z": what
// to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') gives for every finite
// timestamptz (a year past 9999 with all its digits, a year BC as to_char's YYYY shows it:
// 1 BC is 0001).
std::string utc_time_text(std::int64_t microseconds_since_2000);

}  // namespace orch::events
