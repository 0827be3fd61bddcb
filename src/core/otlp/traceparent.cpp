#include "core/otlp/traceparent.hpp"

#include <algorithm>

namespace orch::otlp {
namespace {

bool lower_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string hex_id(const unsigned char* bytes, std::size_t size) {
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    hex += digits[bytes[i] >> 4];
    hex += digits[bytes[i] & 0xf];
  }
  if (hex.find_first_not_of('0') == std::string::npos) hex.back() = '1';
  return hex;
}

}  // namespace

bool valid_traceparent(std::string_view t) {
  return t.size() == 55 && t.substr(0, 3) == "00-" && t[35] == '-' && t[52] == '-' && lower_hex(t.substr(3, 32)) &&
         lower_hex(t.substr(36, 16)) && lower_hex(t.substr(53, 2)) &&
         t.substr(3, 32).find_first_not_of('0') != std::string_view::npos;
}

std::string child_traceparent(std::string_view parent, const std::array<unsigned char, 24>& random) {
  std::string trace = valid_traceparent(parent) ? std::string(parent.substr(3, 32)) : hex_id(random.data(), 16);
  return "00-" + trace + "-" + hex_id(random.data() + 16, 8) + "-01";
}

}  // namespace orch::otlp
