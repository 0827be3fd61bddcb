#include "core/otlp/traceparent.hpp"

#include <algorithm>

#include "core/common/lower_hex.hpp"

namespace orch::otlp {
namespace {

bool is_lower_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string hex_id(const unsigned char* bytes, std::size_t size) {
  std::string hex = lower_hex(bytes, size);
  if (hex.find_first_not_of('0') == std::string::npos) hex.back() = '1';
  return hex;
}

}  // namespace

bool valid_traceparent(std::string_view t) {
  return t.size() == 55 && t.substr(0, 3) == "00-" && t[35] == '-' && t[52] == '-' && is_lower_hex(t.substr(3, 32)) &&
         is_lower_hex(t.substr(36, 16)) && is_lower_hex(t.substr(53, 2)) &&
         t.substr(3, 32).find_first_not_of('0') != std::string_view::npos;
}

std::string child_traceparent(std::string_view parent, const std::array<unsigned char, 24>& random) {
  std::string trace = valid_traceparent(parent) ? std::string(parent.substr(3, 32)) : hex_id(random.data(), 16);
  return "00-" + trace + "-" + hex_id(random.data() + 16, 8) + "-01";
}

}  // namespace orch::otlp
