#include "core/events/cloud_event.hpp"

#include <gtest/gtest.h>

#include <regex>

using orch::events::utc_time_text;
using orch::events::uuid_text;

TEST(CloudEvent, UuidIsVersion4InTheTextFormGenRandomUuidGives) {
  std::array<unsigned char, 16> zeros{};
  EXPECT_EQ(uuid_text(zeros), "00000000-0000-4000-8000-000000000000");
  std::array<unsigned char, 16> ones{};
  ones.fill(0xff);
  EXPECT_EQ(uuid_text(ones), "ffffffff-ffff-4fff-bfff-ffffffffffff");
  std::array<unsigned char, 16> counting{};
  for (std::size_t i = 0; i < counting.size(); ++i) counting[i] = static_cast<unsigned char>(i * 17);
  std::string text = uuid_text(counting);
  EXPECT_EQ(text, "00112233-4455-4677-8899-aabbccddeeff");
  EXPECT_TRUE(std::regex_match(text, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
}

// Microseconds since 2000-01-01 UTC, as PostgreSQL counts them.
constexpr std::int64_t kUnix = -946684800000000;  // 1970-01-01

TEST(CloudEvent, TimeIsUtcWithMicroseconds) {
  EXPECT_EQ(utc_time_text(0), "2000-01-01T00:00:00.000000Z");
  EXPECT_EQ(utc_time_text(1), "2000-01-01T00:00:00.000001Z");
  EXPECT_EQ(utc_time_text(kUnix), "1970-01-01T00:00:00.000000Z");
  // 2000 was a leap year (divisible by 400), 2100 will not be.
  EXPECT_EQ(utc_time_text(kUnix + 951782400000000 + 123456), "2000-02-29T00:00:00.123456Z");
  EXPECT_EQ(utc_time_text(kUnix + 4107542400000000), "2100-03-01T00:00:00.000000Z");
  EXPECT_EQ(utc_time_text(kUnix + 4107542400000000 - 1), "2100-02-28T23:59:59.999999Z");
  EXPECT_EQ(utc_time_text(kUnix + 1796364139458536), "2026-12-04T06:02:19.458536Z");
  EXPECT_EQ(utc_time_text(kUnix + 253402300799999999), "9999-12-31T23:59:59.999999Z");
}

TEST(CloudEvent, TimeBefore2000CountsBackFromTheDayItFallsIn) {
  EXPECT_EQ(utc_time_text(-1), "1999-12-31T23:59:59.999999Z");
  EXPECT_EQ(utc_time_text(kUnix - 1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(utc_time_text(kUnix - 86400000000), "1969-12-31T00:00:00.000000Z");
  EXPECT_EQ(utc_time_text(kUnix - 86400000001), "1969-12-30T23:59:59.999999Z");
  EXPECT_EQ(utc_time_text(kUnix - 62135596800000000), "0001-01-01T00:00:00.000000Z");
}

// The ends of timestamptz, as to_char shows them: no overflow at the top, the years BC
// without a sign (1 BC is 0001).
TEST(CloudEvent, TimeAtTheEndsOfTimestamptz) {
  EXPECT_EQ(utc_time_text(9223371331199999999), "294276-12-31T23:59:59.999999Z");
  EXPECT_EQ(utc_time_text(-211813488000000000), "4714-11-24T00:00:00.000000Z");  // 4714-11-24 BC
  EXPECT_EQ(utc_time_text(kUnix - 62135596800000000 - 1), "0001-12-31T23:59:59.999999Z");  // 1 BC
}
