// JSON Schema patterns: ECMA-262 syntax, matched by RE2 in linear time.
#include "core/schema/ecma_regex.hpp"

#include <re2/re2.h>

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"
#include "core/schema/json_schema.hpp"

using nlohmann::json;
using orch::UserError;
using orch::schema::Schema;

namespace {

bool matches(const std::string& pattern, const std::string& text) {
  return orch::schema::pattern_search(*orch::schema::compile_ecma_pattern(pattern), text);
}

// The message and hint compiling {"properties": {"code": {"pattern": pattern}}} gives.
std::pair<std::string, std::string> refusal(const std::string& pattern) {
  try {
    Schema::compile(json{{"properties", {{"code", {{"pattern", pattern}}}}}});
  } catch (const UserError& e) {
    return {e.what(), e.hint()};
  }
  return {"", ""};
}

}  // namespace

TEST(EcmaRegex, CatastrophicBacktrackingPatternsRunInLinearTime) {
  // std::regex took 21 s on this; RE2 answers at once (ctest's timeout guards it).
  EXPECT_FALSE(matches("^(a+)+$", std::string(30, 'a') + "!"));
  EXPECT_TRUE(matches("^(a+)+$", std::string(30, 'a')));
  EXPECT_FALSE(matches("^(a|aa)*$", std::string(100000, 'a') + "b"));
  EXPECT_FALSE(matches("(x+x+)+y", std::string(5000, 'x')));
  auto schema = Schema::compile(json::parse(R"({"pattern": "^(a+)+$"})"));
  EXPECT_FALSE(schema->is_valid(std::string(30, 'a') + "!"));
}

TEST(EcmaRegex, UnsupportedFeaturesAreRefusedAtCompileNamingPatternPathAndFeature) {
  const std::string hint =
      "Patterns are matched with RE2, in time linear in the string, which cannot do backreferences, lookahead or "
      "lookbehind; see https://github.com/google/re2/wiki/Syntax.";
  auto expect = [&](const std::string& pattern, const std::string& feature) {
    auto [message, given_hint] = refusal(pattern);
    EXPECT_EQ(message, "invalid JSON Schema at /properties/code/pattern: the pattern " + json(pattern).dump() +
                           " uses " + feature + ", which is not supported")
        << pattern;
    EXPECT_EQ(given_hint, hint) << pattern;
  };
  expect("(a)\\1", "a backreference \\1");
  expect("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)\\10", "a backreference \\10");
  expect("(?<x>a)\\k<x>", "a named backreference \\k<...>");
  expect("^(?=a)", "lookahead (?=...)");
  expect("^(?!a)", "lookahead (?!...)");
  expect("(?<=a)b", "lookbehind (?<=...)");
  expect("(?<!a)b", "lookbehind (?<!...)");
  expect("(?i)abc", "an inline modifier group (?i...)");
  expect("(?i:abc)", "an inline modifier group (?i...)");
  expect("\\01", "an octal escape \\01");
  expect("[^a\\S]", "\\S inside a negated character class [^...\\S...]");
  expect("\\uD800", "a lone surrogate \\uD800 (strings are matched as UTF-8, which cannot contain one)");
  expect("\\p{Script_Extensions=Greek}",
         "the Unicode property \\p{Script_Extensions=Greek} (RE2 knows general categories and scripts only)");
  expect("\\p{Alphabetic}", "a Unicode property RE2 does not know (invalid character class range: \\p{Alphabetic})");
  expect("a{1001}", "a repetition count above RE2's limit of 1000 (invalid repetition size: {1001})");
  // In patternProperties, the path ends with the pattern itself, as a JSON Pointer token.
  try {
    Schema::compile(json::parse(R"({"patternProperties": {"^(?!x-)/": {}}})"));
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "invalid JSON Schema at /patternProperties/^(?!x-)~1: the pattern \"^(?!x-)/\" uses lookahead (?!...), "
              "which is not supported");
  }
}

TEST(EcmaRegex, PatternsWithLargeProgramsAreRefusedAtCompile) {
  // A search costs up to ~18 ns per byte per instruction of the RE2 program, and is charged
  // for it; programs above kMaxPatternProgramSize are refused when compiled, naming the size.
  for (const char* pattern : {"a.{999}c", "\\s{999}", "\\p{L}{5}"}) {
    auto [message, hint] = refusal(pattern);
    EXPECT_NE(message.find(" RE2 instructions, above the limit of 5000 (a counted repetition multiplies what it "
                           "repeats: prefer + or * with minLength/maxLength), which is not supported"),
              std::string::npos)
        << pattern << ": " << message;
    EXPECT_NE(message.find("uses a compiled program of "), std::string::npos) << message;
  }
  EXPECT_THROW(orch::schema::compile_ecma_pattern("a.{999}c"), orch::schema::PatternError);
  // Large but admitted: each ECMA "." is about 20 UTF-8 instructions, \p{L} about 800.
  for (const char* pattern : {"^.{1,200}$", "^[\\p{L}\\s]*$", "a{1000}b"}) {
    auto regex = orch::schema::compile_ecma_pattern(pattern);
    EXPECT_LE(orch::schema::pattern_program_size(*regex), orch::schema::kMaxPatternProgramSize) << pattern;
    EXPECT_GT(orch::schema::pattern_program_size(*regex), 12) << pattern;
  }
}

TEST(EcmaRegex, InvalidPatternsAreRefusedAsSuch) {
  auto message = [](const std::string& pattern) { return refusal(pattern).first; };
  EXPECT_EQ(message("([a-z]"), R"(invalid JSON Schema at /properties/code/pattern: "([a-z]" is not a valid regular expression: missing ): ([a-z])");
  EXPECT_EQ(message("[a-z"), R"(invalid JSON Schema at /properties/code/pattern: "[a-z" is not a valid regular expression: a character class [ is not closed with ])");
  EXPECT_EQ(message("\\"), R"(invalid JSON Schema at /properties/code/pattern: "\\" is not a valid regular expression: it ends with a lone backslash)");
  // Escapes ECMA-262 does not define are refused, not given RE2's meaning (\z, \A, \Q...).
  for (const char* escape : {"\\a", "\\z", "\\A", "\\Q", "\\C", "\\e", "\\h", "\\G"})
    EXPECT_NE(message(escape).find("is not an escape ECMA-262 defines"), std::string::npos) << escape;
  EXPECT_NE(message("\\xZ1").find("\\x must be followed by two hexadecimal digits"), std::string::npos);
  EXPECT_NE(message("\\u12").find("\\u must be followed by four hexadecimal digits"), std::string::npos);
  EXPECT_NE(message("(?<1x>a)").find("\"1x\" is not a valid group name"), std::string::npos);
  EXPECT_NE(message("a**").find("is not a valid regular expression: bad repetition operator"), std::string::npos);
}

TEST(EcmaRegex, EcmaSyntaxIsTranslatedToItsEcmaMeaning) {
  // \d and \w are ASCII in both.
  EXPECT_TRUE(matches("^\\d+$", "0123456789"));
  EXPECT_FALSE(matches("^\\d$", "\xd9\xa3"));  // ARABIC-INDIC DIGIT THREE is not \d in ECMA
  EXPECT_TRUE(matches("^\\w+$", "abc_XYZ_019"));
  EXPECT_FALSE(matches("^\\w$", "\xc3\xa9"));
  // \s includes \v, U+00A0, U+FEFF and U+2028 in ECMA (RE2's \s does not); \S excludes them.
  for (const char* space : {"\v", "\xc2\xa0", "\xef\xbb\xbf", "\xe2\x80\xa8", "\xe3\x80\x80", " ", "\t"}) {
    EXPECT_TRUE(matches("^\\s$", space)) << space;
    EXPECT_TRUE(matches("^[\\s]$", space)) << space;
    EXPECT_FALSE(matches("^\\S$", space)) << space;
    EXPECT_FALSE(matches("^[x\\S]$", space)) << space;
  }
  EXPECT_TRUE(matches("^[x\\S]$", "y"));
  EXPECT_TRUE(matches("^[\\s\\S]$", "\n"));
  // "." is a code point, not a byte, and excludes ECMA's line terminators.
  EXPECT_TRUE(matches("^.$", "\xf0\x9f\x98\x80"));
  EXPECT_FALSE(matches("^.$", "\r"));
  EXPECT_FALSE(matches("^.$", "\xe2\x80\xa9"));
  EXPECT_TRUE(matches("^[.]$", "."));
  EXPECT_FALSE(matches("^[.]$", "x"));
  // \uXXXX, \u{X}, surrogate pairs, \xHH, \cX, \0.
  EXPECT_TRUE(matches("^\\u0041\\x42$", "AB"));
  EXPECT_TRUE(matches("^\\u00e9$", "\xc3\xa9"));
  EXPECT_TRUE(matches("^\\uD83D\\uDE00$", "\xf0\x9f\x98\x80"));
  EXPECT_TRUE(matches("^\\u{1F600}$", "\xf0\x9f\x98\x80"));
  EXPECT_TRUE(matches("^\\cJ$", "\n"));
  EXPECT_TRUE(matches(std::string("^a\\0$"), std::string("a\0", 2)));
  // Named groups are groups.
  EXPECT_TRUE(matches("^(?<year>\\d{4})-(?<month>\\d{2})$", "2026-11"));
  // [\b] is a backspace; \b outside a class a word boundary.
  EXPECT_TRUE(matches("^[\\b]$", "\b"));
  EXPECT_TRUE(matches("\\bcat\\b", "a cat here"));
  EXPECT_FALSE(matches("\\bcat\\b", "concatenate"));
  // [] matches nothing, [^] anything.
  EXPECT_FALSE(matches("a[]", "a"));
  EXPECT_TRUE(matches("^[^]$", "\n"));
  // "[" inside a class is a literal, not the start of a POSIX class.
  EXPECT_TRUE(matches("^[[:a]+$", "[:a"));
  EXPECT_FALSE(matches("^[[:alpha:]]$", "b"));
  EXPECT_TRUE(matches("^[[:alpha:]]$", "p]"));
  // Annex B: braces and brackets that are not syntax are literals.
  EXPECT_TRUE(matches("^a{$", "a{"));
  EXPECT_TRUE(matches("^{x}$", "{x}"));
  EXPECT_TRUE(matches("^x]$", "x]"));
  EXPECT_TRUE(matches("^a{2,3}$", "aaa"));
  EXPECT_FALSE(matches("^a{2}$", "aaa"));
  EXPECT_TRUE(matches("^a{2,}?$", "aaaa"));
  // Unicode properties: short and long general categories, scripts, ASCII.
  EXPECT_TRUE(matches("^\\p{L}+$", "\xc3\xa9t\xc3\xa9"));
  EXPECT_TRUE(matches("^\\p{Letter}+$", "\xc3\xa9t\xc3\xa9"));
  EXPECT_TRUE(matches("^\\p{General_Category=Uppercase_Letter}$", "\xc3\x89"));
  EXPECT_TRUE(matches("^\\p{Script=Greek}$", "\xce\xb1"));
  EXPECT_FALSE(matches("^\\p{sc=Greek}$", "a"));
  EXPECT_TRUE(matches("^\\P{Lu}$", "a"));
  EXPECT_TRUE(matches("^\\p{ASCII}+$", "abc"));
  EXPECT_FALSE(matches("^[\\p{ASCII}]$", "\xc3\xa9"));
  EXPECT_TRUE(matches("^\\P{ASCII}$", "\xc3\xa9"));
  // ^ and $ anchor the whole string (no multiline flag): not before a final newline.
  EXPECT_FALSE(matches("^a$", "a\n"));
  EXPECT_FALSE(matches("^b", "a\nb"));
  // Escaped punctuation is literal.
  EXPECT_TRUE(matches("^\\/\\.\\*\\-\\$$", "/.*-$"));
}

TEST(EcmaRegex, TranslationsAreWhatTheyClaim) {
  using orch::schema::ecma_to_re2;
  EXPECT_EQ(ecma_to_re2("^[a-z]+(-[a-z]+)*$"), "^[a-z]+(-[a-z]+)*$");  // common patterns pass unchanged
  EXPECT_EQ(ecma_to_re2("(?<n>a)"), "(a)");
  EXPECT_EQ(ecma_to_re2("\\u0041"), "\\x{41}");
  EXPECT_EQ(ecma_to_re2("[]"), "[^\\x00-\\x{10FFFF}]");
  EXPECT_EQ(ecma_to_re2("a{"), "a\\{");
}
