#include "core/common/text_sanitize.hpp"

namespace orch {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// The length of the valid UTF-8 character at text[i], or 0 if none starts there; then
// `bad` is how many bytes form the maximal ill-formed subpart to replace (at least 1).
// The ranges are Unicode's table 3-7 (well-formed byte sequences): the second byte's
// range excludes overlongs (E0, F0), surrogates (ED) and code points beyond U+10FFFF (F4).
std::size_t valid_length(std::string_view text, std::size_t i, std::size_t& bad) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char b0 = byte(i);
  bad = 1;
  if (b0 == 0) return 0;
  if (b0 < 0x80) return 1;
  std::size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) need = 2;
  else if (b0 == 0xE0) need = 3, lo = 0xA0;
  else if (b0 == 0xED) need = 3, hi = 0x9F;
  else if (b0 >= 0xE1 && b0 <= 0xEF) need = 3;
  else if (b0 == 0xF0) need = 4, lo = 0x90;
  else if (b0 == 0xF4) need = 4, hi = 0x8F;
  else if (b0 >= 0xF1 && b0 <= 0xF3) need = 4;
  else return 0;  // 80..C1 (continuation or overlong lead), F5..FF
  for (std::size_t k = 1; k < need; ++k) {
    if (i + k >= text.size()) {
      bad = k;  // truncated: the lead and the continuation bytes so far
      return 0;
    }
    unsigned char b = byte(i + k);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
      bad = k;  // the valid prefix is one subpart; the byte that broke it starts afresh
      return 0;
    }
  }
  return need;
}

}  // namespace

bool is_clean_text(std::string_view text) {
  std::size_t bad;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = valid_length(text, i, bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize_text(std::string_view text) {
  // Logs are mostly ASCII: skip the clean prefix without copying byte by byte.
  std::size_t i = 0, bad = 0;
  while (i < text.size()) {
    std::size_t n = valid_length(text, i, bad);
    if (n == 0) break;
    i += n;
  }
  if (i == text.size()) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  out.append(text.substr(0, i));
  while (i < text.size()) {
    std::size_t n = valid_length(text, i, bad);
    if (n == 0) {
      out += kReplacement;
      i += bad;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace orch
