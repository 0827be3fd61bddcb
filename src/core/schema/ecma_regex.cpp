#include "core/schema/ecma_regex.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include <re2/re2.h>

namespace orch::schema {
namespace {

// ECMA-262's WhiteSpace and LineTerminator code points, the meaning of \s: RE2's \s is
// only [\t\n\f\r ].
constexpr const char* kSpaceItems =
    "\\t\\n\\x0B\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}";
// ECMA's "." matches anything but a LineTerminator; RE2's only excludes \n.
constexpr const char* kDot = "[^\\n\\r\\x{2028}\\x{2029}]";
constexpr const char* kAnything = "[\\x00-\\x{10FFFF}]";
constexpr const char* kNothing = "[^\\x00-\\x{10FFFF}]";

[[noreturn]] void unsupported(const std::string& feature) { throw PatternError(feature, true); }
[[noreturn]] void invalid(const std::string& problem) { throw PatternError(problem, false); }

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string hex_escape(unsigned long code_point) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "\\x{%lX}", code_point);
  return buffer;
}

// ECMA's long General_Category names (and their aliases) -> the short ones RE2 knows.
const std::map<std::string, std::string>& category_names() {
  static const std::map<std::string, std::string> names = {
      {"Letter", "L"}, {"Uppercase_Letter", "Lu"}, {"Lowercase_Letter", "Ll"},
      {"Titlecase_Letter", "Lt"}, {"Modifier_Letter", "Lm"}, {"Other_Letter", "Lo"},
      {"Mark", "M"}, {"Combining_Mark", "M"}, {"Nonspacing_Mark", "Mn"}, {"Spacing_Mark", "Mc"},
      {"Enclosing_Mark", "Me"}, {"Number", "N"}, {"Decimal_Number", "Nd"}, {"digit", "Nd"},
      {"Letter_Number", "Nl"}, {"Other_Number", "No"}, {"Punctuation", "P"}, {"punct", "P"},
      {"Connector_Punctuation", "Pc"}, {"Dash_Punctuation", "Pd"}, {"Open_Punctuation", "Ps"},
      {"Close_Punctuation", "Pe"}, {"Initial_Punctuation", "Pi"}, {"Final_Punctuation", "Pf"},
      {"Other_Punctuation", "Po"}, {"Symbol", "S"}, {"Math_Symbol", "Sm"},
      {"Currency_Symbol", "Sc"}, {"Modifier_Symbol", "Sk"}, {"Other_Symbol", "So"},
      {"Separator", "Z"}, {"Space_Separator", "Zs"}, {"Line_Separator", "Zl"},
      {"Paragraph_Separator", "Zp"}, {"Other", "C"}, {"Control", "Cc"}, {"cntrl", "Cc"},
      {"Format", "Cf"}, {"Surrogate", "Cs"}, {"Private_Use", "Co"}, {"Unassigned", "Cn"}};
  return names;
}

class Translator {
 public:
  explicit Translator(std::string_view pattern) : p_(pattern) {}

  std::string run() {
    while (i_ < p_.size()) {
      char c = p_[i_];
      switch (c) {
        case '\\': out_ += escape(false); break;
        case '(': group(); break;
        case '[': char_class(); break;
        case '.': out_ += kDot; ++i_; break;
        case '{': brace(); break;
        case '}': out_ += "\\}"; ++i_; break;  // Annex B: a literal outside a quantifier
        case ']': out_ += "\\]"; ++i_; break;
        default: out_ += c; ++i_; break;
      }
    }
    return out_;
  }

 private:
  // `{n}`, `{n,}` and `{n,m}` are quantifiers (RE2 reads them alike); any other "{" is a
  // literal in ECMA's Annex B, which RE2 might read otherwise.
  void brace() {
    std::size_t j = i_ + 1;
    std::size_t digits = j;
    while (j < p_.size() && is_digit(p_[j])) ++j;
    bool quantifier = j > digits;
    if (quantifier && j < p_.size() && p_[j] == ',') {
      ++j;
      while (j < p_.size() && is_digit(p_[j])) ++j;
    }
    quantifier = quantifier && j < p_.size() && p_[j] == '}';
    if (quantifier) {
      out_.append(p_.substr(i_, j + 1 - i_));
      i_ = j + 1;
    } else {
      out_ += "\\{";
      ++i_;
    }
  }

  void group() {
    ++i_;  // past '('
    if (i_ >= p_.size() || p_[i_] != '?') {
      out_ += '(';
      return;
    }
    std::string_view rest = p_.substr(i_);
    if (rest.substr(0, 2) == "?:") {
      out_ += "(?:";
      i_ += 2;
    } else if (rest.substr(0, 2) == "?=" || rest.substr(0, 2) == "?!") {
      unsupported("lookahead (" + std::string(rest.substr(0, 2)) + "...)");
    } else if (rest.substr(0, 3) == "?<=" || rest.substr(0, 3) == "?<!") {
      unsupported("lookbehind (" + std::string(rest.substr(0, 3)) + "...)");
    } else if (rest.substr(0, 2) == "?<") {
      // A named group; nothing reads the captures, and RE2's rules for names differ from
      // ECMA's, so it becomes a plain group once the name is checked.
      std::size_t close = rest.find('>');
      if (close == std::string_view::npos) invalid("the group name after (?< is not closed with >");
      std::string_view name = rest.substr(2, close - 2);
      bool ok = !name.empty() && !is_digit(name[0]);
      for (char c : name)
        ok = ok && (is_ascii_alpha(c) || is_digit(c) || c == '_' || c == '$' || static_cast<unsigned char>(c) >= 0x80);
      if (!ok) invalid("\"" + std::string(name) + "\" is not a valid group name");
      out_ += '(';
      i_ += close + 1;
    } else if (rest.size() > 1 && is_ascii_alpha(rest[1])) {
      unsupported("an inline modifier group (?" + std::string(1, rest[1]) + "...)");
    } else {
      invalid("(? must be followed by :, =, !, <= , <! or <name>");
    }
  }

  void char_class() {
    ++i_;  // past '['
    bool negated = i_ < p_.size() && p_[i_] == '^';
    if (negated) ++i_;
    std::string items;
    has_nonspace_ = false;
    while (i_ < p_.size() && p_[i_] != ']') {
      char c = p_[i_];
      if (c == '\\') {
        items += escape(true);
      } else if (c == '[') {
        items += "\\[";  // literal in ECMA; RE2 would read [:alpha:] as a POSIX class
        ++i_;
      } else {
        items += c;
        ++i_;
      }
    }
    if (i_ >= p_.size()) invalid("a character class [ is not closed with ]");
    ++i_;  // past ']'
    if (has_nonspace_) {
      if (negated) unsupported("\\S inside a negated character class [^...\\S...]");
      std::string nonspace = std::string("[^") + kSpaceItems + "]";
      out_ += items.empty() ? nonspace : "(?:[" + items + "]|" + nonspace + ")";
    } else if (items.empty()) {
      out_ += negated ? kAnything : kNothing;  // [^] and []
    } else {
      out_ += (negated ? "[^" : "[") + items + "]";
    }
  }

  unsigned long hex_value(std::size_t from, std::size_t count) {
    return std::stoul(std::string(p_.substr(from, count)), nullptr, 16);
  }

  bool hex_at(std::size_t from, std::size_t count) {
    if (from + count > p_.size()) return false;
    for (std::size_t k = from; k < from + count; ++k)
      if (!is_hex(p_[k])) return false;
    return true;
  }

  // \uXXXX, a surrogate pair \uD83D\uDE00, or \u{X...}; i_ is at the 'u'.
  std::string unicode_escape() {
    unsigned long code;
    if (i_ + 1 < p_.size() && p_[i_ + 1] == '{') {
      std::size_t close = p_.find('}', i_ + 2);
      std::size_t count = close == std::string_view::npos ? 0 : close - i_ - 2;
      if (count == 0 || count > 6 || !hex_at(i_ + 2, count)) invalid("\\u{ must hold 1 to 6 hexadecimal digits and }");
      code = hex_value(i_ + 2, count);
      if (code > 0x10FFFF) invalid("\\u{" + std::string(p_.substr(i_ + 2, count)) + "} is beyond U+10FFFF");
      i_ = close + 1;
    } else {
      if (!hex_at(i_ + 1, 4)) invalid("\\u must be followed by four hexadecimal digits");
      code = hex_value(i_ + 1, 4);
      i_ += 5;
      if (code >= 0xD800 && code <= 0xDBFF && p_.substr(i_, 2) == "\\u" && hex_at(i_ + 2, 4)) {
        unsigned long low = hex_value(i_ + 2, 4);
        if (low >= 0xDC00 && low <= 0xDFFF) {
          code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          i_ += 6;
        }
      }
    }
    if (code >= 0xD800 && code <= 0xDFFF) {
      char buffer[16];
      std::snprintf(buffer, sizeof buffer, "\\u%04lX", code);
      unsupported(std::string("a lone surrogate ") + buffer + " (strings are matched as UTF-8, which cannot contain one)");
    }
    return hex_escape(code);
  }

  // \p{...} or \P{...}; i_ is at the 'p' or 'P'.
  std::string property(bool in_class) {
    bool negated = p_[i_] == 'P';
    std::size_t close = p_.find('}', i_);
    if (i_ + 1 >= p_.size() || p_[i_ + 1] != '{' || close == std::string_view::npos)
      invalid(std::string("\\") + p_[i_] + " must be followed by {PropertyName}");
    std::string body(p_.substr(i_ + 2, close - i_ - 2));
    std::string written = std::string("\\") + p_[i_] + "{" + body + "}";
    i_ = close + 1;
    std::string name;
    if (auto eq = body.find('='); eq != std::string::npos) {
      std::string key = body.substr(0, eq), value = body.substr(eq + 1);
      if (key == "General_Category" || key == "gc") {
        auto it = category_names().find(value);
        name = it != category_names().end() ? it->second : value;
      } else if (key == "Script" || key == "sc") {
        name = value;  // RE2 knows scripts by their long names (Greek, Latin, Han)
      } else {
        unsupported("the Unicode property " + written + " (RE2 knows general categories and scripts only)");
      }
    } else if (body == "ASCII") {
      std::string range = negated ? "\\x{80}-\\x{10FFFF}" : "\\x00-\\x7F";
      return in_class ? range : "[" + range + "]";
    } else {
      auto it = category_names().find(body);
      name = it != category_names().end() ? it->second : body;
    }
    if (name.empty() || name.find_first_of("{}\\") != std::string::npos) invalid(written + " is not a property name");
    return std::string("\\") + (negated ? "P" : "p") + "{" + name + "}";
  }

  // One escape; i_ is at the backslash, and is left after the escape.
  std::string escape(bool in_class) {
    ++i_;
    if (i_ >= p_.size()) invalid("it ends with a lone backslash");
    char c = p_[i_];
    switch (c) {
      case 'd': case 'D': case 'w': case 'W':
      case 't': case 'n': case 'r': case 'f': case 'v':
        ++i_;
        return std::string("\\") + c;
      case 's':
        ++i_;
        return in_class ? std::string(kSpaceItems) : std::string("[") + kSpaceItems + "]";
      case 'S':
        ++i_;
        if (in_class) {
          has_nonspace_ = true;
          return "";
        }
        return std::string("[^") + kSpaceItems + "]";
      case 'b': case 'B':
        ++i_;
        if (!in_class) return std::string("\\") + c;
        if (c == 'b') return "\\x08";  // inside a class, \b is the backspace character
        invalid("\\B is not allowed inside a character class");
      case '0':
        ++i_;
        if (i_ < p_.size() && is_digit(p_[i_])) unsupported("an octal escape \\0" + std::string(1, p_[i_]));
        return "\\x00";
      case 'k':
        unsupported("a named backreference \\k<...>");
      case 'x':
        if (!hex_at(i_ + 1, 2)) invalid("\\x must be followed by two hexadecimal digits");
        i_ += 3;
        return "\\x" + std::string(p_.substr(i_ - 2, 2));
      case 'u':
        return unicode_escape();
      case 'c':
        if (i_ + 1 < p_.size() && is_ascii_alpha(p_[i_ + 1])) {
          i_ += 2;
          return hex_escape(static_cast<unsigned char>(p_[i_ - 1]) % 32);
        }
        invalid("\\c must be followed by a letter");
      case 'p': case 'P':
        return property(in_class);
      default:
        break;
    }
    if (c >= '1' && c <= '9') {
      std::size_t j = i_;
      while (j < p_.size() && is_digit(p_[j])) ++j;
      unsupported("a backreference \\" + std::string(p_.substr(i_, j - i_)));
    }
    if (is_ascii_alpha(c) || is_digit(c))
      invalid("\\" + std::string(1, c) + " is not an escape ECMA-262 defines");
    ++i_;
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80) return std::string(1, c);  // an escaped non-ASCII character is itself;
                                               // its continuation bytes follow as they are
    if (u < 0x20 || u == 0x7F) return hex_escape(u);
    if (c == '-' && !in_class) return "-";
    return std::string("\\") + c;  // punctuation: RE2 reads an escaped one literally
  }

  std::string_view p_;
  std::size_t i_ = 0;
  std::string out_;
  bool has_nonspace_ = false;  // the class being read holds \S
};

}  // namespace

std::string ecma_to_re2(std::string_view pattern) { return Translator(pattern).run(); }

std::shared_ptr<const re2::RE2> compile_ecma_pattern(std::string_view pattern) {
  std::string translated = ecma_to_re2(pattern);
  RE2::Options options;
  options.set_log_errors(false);   // errors are returned to the user, not written to stderr
  options.set_never_capture(true); // only whether it matches counts: lets RE2 use its DFA
  // RE2's default max_mem (8 MiB) is kept: with 64 or 256 MiB, RE2 accepts programs of a
  // million instructions (0.5 s to compile) and its DFA rebuilds states for longer before
  // it gives up, which made the slow cases slower (a[ab]{30}c on random text: 0.36 us a
  // byte at 8 MiB, 2 us at 64 MiB; measured in Release).
  auto compiled = std::make_shared<const RE2>(translated, options);
  if (compiled->ok()) {
    int size = std::max(compiled->ProgramSize(), compiled->ReverseProgramSize());
    if (size > kMaxPatternProgramSize)
      unsupported("a compiled program of " + std::to_string(size) + " RE2 instructions, above the limit of " +
                  std::to_string(kMaxPatternProgramSize) +
                  " (a counted repetition multiplies what it repeats: prefer + or * with minLength/maxLength)");
    return compiled;
  }
  std::string why = compiled->error();
  switch (compiled->error_code()) {
    case RE2::ErrorRepeatSize:
      unsupported("a repetition count above RE2's limit of 1000 (" + why + ")");
    case RE2::ErrorPatternTooLarge:
      unsupported("a pattern too large for RE2's memory limit");
    case RE2::ErrorBadCharRange:
      if (why.find("\\p") != std::string::npos || why.find("\\P") != std::string::npos)
        unsupported("a Unicode property RE2 does not know (" + why + ")");
      invalid(why);
    default:
      invalid(why);
  }
}

int pattern_program_size(const re2::RE2& pattern) {
  return std::max({pattern.ProgramSize(), pattern.ReverseProgramSize(), 1});
}

bool pattern_search(const re2::RE2& pattern, std::string_view text) {
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), pattern);
}

}  // namespace orch::schema
