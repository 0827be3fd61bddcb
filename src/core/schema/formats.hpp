// "format" as an assertion, for the formats JSON-Schema-Test-Suite's optional tests cover.
// Draft 2020-12 makes "format" an annotation unless the format-assertion vocabulary is on
// (a schema's metaschema lists it) or the caller asks (CompileOptions::format_assertion).
// Every check is a hand-written scan, linear in the string, with no regular expression
// that could backtrack.
#pragma once

#include <string>

namespace orch::schema {

// Whether `text` is a valid `format`; true for a format this does not know (the
// specification says unknown formats pass).
bool format_matches(const std::string& format, const std::string& text);

}  // namespace orch::schema
