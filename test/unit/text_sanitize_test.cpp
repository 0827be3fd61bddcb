#include "core/common/text_sanitize.hpp"

#include <random>

#include <gtest/gtest.h>

using orch::is_clean_text;
using orch::sanitize_text;

namespace {
const std::string kFffd = "\xEF\xBF\xBD";
std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out += static_cast<char>(b);
  return out;
}
}  // namespace

TEST(TextSanitize, ValidTextIsUnchanged) {
  for (const std::string& text : {std::string(""), std::string("plain ASCII\n\ttext"),
                                  std::string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
                                  bytes({0xF4, 0x8F, 0xBF, 0xBF}),   // U+10FFFF
                                  bytes({0xED, 0x9F, 0xBF}),         // U+D7FF, just below the surrogates
                                  bytes({0xEE, 0x80, 0x80})}) {      // U+E000, just above
    EXPECT_EQ(sanitize_text(text), text);
    EXPECT_TRUE(is_clean_text(text));
  }
}

TEST(TextSanitize, NulAndInvalidSequencesBecomeReplacementCharacters) {
  EXPECT_EQ(sanitize_text(std::string("a\0b", 3)), "a" + kFffd + "b");
  EXPECT_EQ(sanitize_text(bytes({'a', 0x80, 'b'})), "a" + kFffd + "b");           // stray continuation
  EXPECT_EQ(sanitize_text(bytes({0xC0, 0xAF})), kFffd + kFffd);                    // overlong '/'
  EXPECT_EQ(sanitize_text(bytes({0xE0, 0x80, 0xAF})), kFffd + kFffd + kFffd);      // overlong, 3 bytes
  EXPECT_EQ(sanitize_text(bytes({0xF0, 0x80, 0x80, 0xAF})), kFffd + kFffd + kFffd + kFffd);
  EXPECT_EQ(sanitize_text(bytes({0xED, 0xA0, 0x80})), kFffd + kFffd + kFffd);      // surrogate U+D800
  EXPECT_EQ(sanitize_text(bytes({0xF4, 0x90, 0x80, 0x80})), kFffd + kFffd + kFffd + kFffd);  // U+110000
  EXPECT_EQ(sanitize_text(bytes({0xF5, 0x80})), kFffd + kFffd);
  EXPECT_EQ(sanitize_text(bytes({0xFF, 'x'})), kFffd + "x");
  // A valid prefix of a sequence is one subpart; the byte that breaks it starts afresh.
  EXPECT_EQ(sanitize_text(bytes({0xE2, 0x82, 'x'})), kFffd + "x");
  EXPECT_EQ(sanitize_text(bytes({0xE2, 0x82, 0xE2, 0x82, 0xAC})), kFffd + "\xe2\x82\xac");
}

TEST(TextSanitize, SequencesCutShortAtTheEndAreReplaced) {
  // A cap on a container's output can cut the last character anywhere.
  std::string euro = "\xe2\x82\xac", emoji = "\xf0\x9f\x98\x80";
  EXPECT_EQ(sanitize_text("log " + euro.substr(0, 1)), "log " + kFffd);
  EXPECT_EQ(sanitize_text("log " + euro.substr(0, 2)), "log " + kFffd);
  for (std::size_t cut = 1; cut < emoji.size(); ++cut) EXPECT_EQ(sanitize_text("x" + emoji.substr(0, cut)), "x" + kFffd);
  EXPECT_EQ(sanitize_text(bytes({0xC3})), kFffd);
  EXPECT_FALSE(is_clean_text(bytes({0xC3})));
}

TEST(TextSanitize, RandomBytesAlwaysComeOutValidWithoutNul) {
  std::mt19937 random(20261123);  // fixed: a failure can be reproduced
  std::uniform_int_distribution<int> length(0, 64), byte(0, 255), biased(0, 3);
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    int n = length(random);
    for (int i = 0; i < n; ++i) {
      // Mostly bytes that start or continue multi-byte sequences, where the cases are.
      int b = byte(random);
      if (biased(random) != 0) b = 0x80 | (b & 0x7F);
      text += static_cast<char>(b);
    }
    std::string clean = sanitize_text(text);
    ASSERT_TRUE(is_clean_text(clean)) << round;
    ASSERT_EQ(clean.find('\0'), std::string::npos);
    ASSERT_EQ(sanitize_text(clean), clean);  // idempotent
    if (is_clean_text(text)) {
      ASSERT_EQ(clean, text);
    }
  }
}

// Checked against the definition rather than a second decoder: every scalar value
// U+0001..U+D7FF and U+E000..U+10FFFF, encoded in its shortest form, is clean text, and
// the encoded surrogates are not.
TEST(TextSanitize, EveryCodePointEncodesToCleanText) {
  auto encode = [](char32_t c) {
    std::string out;
    if (c < 0x80) out += static_cast<char>(c);
    else if (c < 0x800) out += {static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
    else if (c < 0x10000)
      out += {static_cast<char>(0xE0 | (c >> 12)), static_cast<char>(0x80 | ((c >> 6) & 0x3F)), static_cast<char>(0x80 | (c & 0x3F))};
    else
      out += {static_cast<char>(0xF0 | (c >> 18)), static_cast<char>(0x80 | ((c >> 12) & 0x3F)),
              static_cast<char>(0x80 | ((c >> 6) & 0x3F)), static_cast<char>(0x80 | (c & 0x3F))};
    return out;
  };
  for (char32_t c = 1; c <= 0x10FFFF; ++c) {
    std::string text = encode(c);
    bool surrogate = c >= 0xD800 && c <= 0xDFFF;
    ASSERT_EQ(is_clean_text(text), !surrogate) << std::hex << static_cast<unsigned long>(c);
  }
}
