#include "core/events/cloud_event.hpp"

#include <cstdio>

#include "core/common/lower_hex.hpp"

namespace orch::events {

std::string uuid_text(std::array<unsigned char, 16> random) {
  random[6] = static_cast<unsigned char>((random[6] & 0x0f) | 0x40);  // version 4
  random[8] = static_cast<unsigned char>((random[8] & 0x3f) | 0x80);  // variant 10xx (RFC 4122)
  std::string text = lower_hex(random.data(), random.size());
  for (std::size_t at : {20, 16, 12, 8}) text.insert(at, 1, '-');  // 8-4-4-4-12 digits
  return text;
}

namespace {

// Floor division: the day and the time of day of an instant before 1970 are those of the
// day it falls in, not rounded towards 1970.
std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
// civil_from_days).
void civil_from_days(std::int64_t days, std::int64_t& year, unsigned& month, unsigned& day) {
  days += 719468;
  std::int64_t era = floor_div(days, 146097);
  auto day_of_era = static_cast<unsigned>(days - era * 146097);
  unsigned year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  unsigned day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  unsigned shifted_month = (5 * day_of_year + 2) / 153;  // March is 0
  day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
  month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
  year = static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2);
}

}  // namespace

std::string utc_time_text(std::int64_t microseconds_since_2000) {
  constexpr std::int64_t kMicrosecondsPerDay = 86400LL * 1000000;
  constexpr std::int64_t kDays1970To2000 = 10957;
  // Days first: adding the 30 years in microseconds would overflow near the type's end.
  std::int64_t days = floor_div(microseconds_since_2000, kMicrosecondsPerDay);
  std::int64_t of_day = microseconds_since_2000 - days * kMicrosecondsPerDay;
  std::int64_t year = 0;
  unsigned month = 0, day = 0;
  civil_from_days(days + kDays1970To2000, year, month, day);
  if (year <= 0) year = 1 - year;  // to_char's YYYY: 1 BC (year 0) is 0001
  char text[128];  // room for any int64 the compiler can imagine in each field
  std::snprintf(text, sizeof text, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%06lldZ", static_cast<long long>(year), month,
                day, static_cast<long long>(of_day / 3600000000), static_cast<long long>(of_day / 60000000 % 60),
                static_cast<long long>(of_day / 1000000 % 60), static_cast<long long>(of_day % 1000000));
  return text;
}

}  // namespace orch::events
