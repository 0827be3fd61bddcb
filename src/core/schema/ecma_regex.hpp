// JSON Schema patterns are ECMA-262 regular expressions; we match them with RE2, which
// runs in time linear in the subject and never backtracks, so no pattern (such as
// ^(a+)+$) can hold the scheduler. RE2 cannot do what needs backtracking, and reads some
// ECMA syntax differently; this translates a pattern into RE2 syntax with ECMA meaning
// (with the "u" flag: the subject is a sequence of code points, as JSON strings are) and
// refuses, naming it, every feature it cannot express.
//
// Refused: backreferences (\1..\9, \k<name>), lookahead ((?= (?!), lookbehind
// ((?<= (?<!), inline modifiers and other (? groups, octal escapes (\0 followed by a
// digit), \S inside a negated class, lone surrogates (\uD800: UTF-8 text cannot contain
// them), escapes ECMA does not define (\a \e \z \A \Q \h ...: RE2 would give several of
// them another meaning), Unicode properties RE2 does not know (Script_Extensions, binary
// properties but ASCII and Any).
//
// Translated: "." (ECMA excludes \r, U+2028 and U+2029 as well as \n), \s and \S (ECMA
// includes \v, U+00A0, U+FEFF and the Unicode space separators), \uXXXX, \u{X}, surrogate
// pairs, \cX, \0, [\b] (backspace), (?<name>...) -> (?P<name>...), \p{General_Category=..}
// \p{Script=..} and long category names (\p{Letter}) -> RE2's names, [] (matches nothing),
// [^] (matches anything), a literal "[" inside a class (RE2 would read [[:alpha:]] as a
// POSIX class), and a "{", "}" or "]" that is not syntax (ECMA's Annex B reads it literally).
// Unchanged (same meaning in both): \d \D \w \W \b \B (ASCII), ^ and $ (the whole subject:
// no multiline flag), | ( (?: quantifiers (greedy and lazy), [a-z] [^...], \t \n \r \f \v,
// \xHH, \p{L} \p{Greek}, escaped punctuation.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace orch::schema {

// Why a pattern was refused. `unsupported` is true for a valid ECMA-262 feature RE2
// cannot do (a backreference), false for a pattern that is not a valid regular expression.
class PatternError : public std::runtime_error {
 public:
  PatternError(const std::string& message, bool unsupported)
      : std::runtime_error(message), unsupported_(unsupported) {}
  bool unsupported() const { return unsupported_; }

 private:
  bool unsupported_;
};

// The largest RE2 program (instructions, forward or reverse) a pattern may compile to.
// One search costs up to ~18 ns per byte per instruction when RE2's DFA runs out of states
// (measured: a[ab]{999}c on random a/b text, 9 us a byte), and json_schema.cpp charges its
// work budget for that; a pattern above this limit could only ever match short strings
// within the budget, so it is refused when compiled, where the message can say why. 5000
// admits ^.{1,200}$ (4401: each ECMA "." is ~20 UTF-8 instructions) and \p{L} classes
// (~800-1200), and refuses a.{999}c (20985) and \s{999} (18986).
inline constexpr int kMaxPatternProgramSize = 5000;

// The RE2 syntax for ECMA-262 `pattern`. Throws PatternError.
std::string ecma_to_re2(std::string_view pattern);

// Translated and compiled, for searching (not anchored, like ECMA's RegExp.test). Throws
// PatternError. The result is safe to share between threads.
std::shared_ptr<const re2::RE2> compile_ecma_pattern(std::string_view pattern);

// The size of `pattern`'s program in instructions (the larger of RE2's forward and reverse
// programs, at least 1): the factor of text.size() in a search's worst case.
int pattern_program_size(const re2::RE2& pattern);

// Whether `pattern` finds a match anywhere in `text`. Linear in text.size(), times up to
// pattern_program_size(pattern) when RE2's DFA gives up.
bool pattern_search(const re2::RE2& pattern, std::string_view text);

}  // namespace orch::schema
