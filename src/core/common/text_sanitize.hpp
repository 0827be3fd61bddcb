// Text from containers (stderr, logs) on its way into PostgreSQL text or jsonb columns,
// which refuse NUL bytes and, in a UTF8 database, any invalid UTF-8: one stray byte from a
// container would fail the statement that records its whole attempt.
#pragma once

#include <string>
#include <string_view>

namespace orch {

// `text` with every NUL byte and every invalid UTF-8 sequence replaced by U+FFFD (EF BF BD):
// stray continuation bytes, overlong forms, UTF-16 surrogates (U+D800..U+DFFF), code
// points above U+10FFFF, and sequences cut short (a size cap can cut the last character).
// Each maximal ill-formed subpart becomes one U+FFFD, as Unicode recommends (§3.9,
// "U+FFFD Substitution of Maximal Subparts") and WHATWG's decoder does. Valid text
// without NUL is returned unchanged.
std::string sanitize_text(std::string_view text);

// Whether `text` is valid UTF-8 without NUL: what sanitize_text() returns unchanged.
bool is_clean_text(std::string_view text);

}  // namespace orch
