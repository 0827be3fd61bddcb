// Limits on JSON that comes from users and containers, so that no document can crash or
// stall the server that handles it.
//
// Depth: nlohmann/json 3.11 parses and destroys without recursion (its parser keeps an
// explicit stack; basic_json's destructor flattens children onto a heap vector), but it
// recurses once per level when it copies, compares (==) or serialises (dump()) a value,
// and so does our own code that walks schemas, templates and instances. Every document
// that enters the core is therefore refused beyond kMaxJsonDepth levels before anything
// recurses over it; test/unit/json_limits_test.cpp runs those recursions at the limit on
// a thread with a 1 MiB stack under ASan, where frames are largest.
//
// U+0000: PostgreSQL's jsonb (and text) cannot hold it; storing a document with one fails
// the whole statement, so it is found, and named, before we try.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace orch {

// Levels of nesting: [] and {} count one each; "[[1]]" is two levels deep, a scalar none.
// 512 is far beyond any real document, and everything that recurses over a document this
// deep fits in a 1 MiB stack even in the ASan debug build, where frames are largest:
// measured there (json_limits_test.cpp prints it), nlohmann's copy constructor takes
// about 880 KB at 512 levels, dump() 430 KB, operator== 345 KB, and validation at
// kMaxValidationDepth 590 KB (780 KB on the path unevaluated keywords and $dynamicRefs
// take, whose steps count twice). A PostgreSQL backend has max_stack_depth (2 MB) of 8 MB.
inline constexpr std::size_t kMaxJsonDepth = 512;

// Parses JSON text from a user or a container. A byte scan (no recursion, no allocation)
// first refuses text nested deeper than max_depth:
//   "JSON nested deeper than 512 levels (at byte 1234)"   (SQLSTATE 54000)
// then nlohmann parses it; its parse errors, and numbers beyond a double's range (which
// jsonb accepts: 1e400), become
//   "invalid JSON: parse error at line 1, column 5: ..."   (SQLSTATE 22P02)
//   "a JSON number is too large"                           (SQLSTATE 54000)
// All are UserError.
nlohmann::json parse_json_limited(std::string_view text, std::size_t max_depth = kMaxJsonDepth);

// The JSON Pointer ("/a/0/b", "" for the root) of the first array or object, in document
// order, that sits deeper than max_depth levels, or nullopt if there is none. Iterative:
// safe on any value, however it was built.
std::optional<std::string> find_too_deep(const nlohmann::json& value, std::size_t max_depth);

// How many levels deep `value` is, counting no further than stop_at (so the cost is
// bounded by the part of the value that is at most stop_at deep). Iterative.
std::size_t json_depth(const nlohmann::json& value, std::size_t stop_at = kMaxJsonDepth + 1);

// Throws UserError (SQLSTATE 22P05) naming the first string or key that contains U+0000,
// which PostgreSQL's jsonb cannot store:
//   "string at /a contains the character U+0000, which PostgreSQL's jsonb cannot store"
//   "key \"a\u0000\" at /x contains the character U+0000, ..."
// Iterative: safe on any value.
void check_storable_in_jsonb(const nlohmann::json& doc);

// One JSON Pointer reference token: "~" -> "~0", "/" -> "~1".
std::string json_pointer_token(std::string_view key);

// A JSON Pointer for a message: control characters shown as \u00XX, and a pointer
// longer than 200 bytes shortened in the middle ("/a/b/.../y/z"), so that a hostile
// document cannot make the message itself huge.
std::string show_pointer(std::string_view pointer);

}  // namespace orch
