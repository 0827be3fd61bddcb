// Reads one JSON object of a user's spec (an agent, a capability, later a workflow or a
// node) field by field, so that every error names the field by its full path
// ("limits.memory_mb", "capabilities[1].name") and says what was expected and what was
// given. Fields the reader was never asked about are reported by reject_unknown_fields(),
// which catches typos such as "imgae" instead of ignoring them; a required field that is
// missing beside such a typo is reported with the typo named.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace orch {

using json = nlohmann::json;

// "object", "array", "string", "number", "boolean" or "null", as JSON names them.
const char* json_type_name(const json& value);

class SpecReader {
 public:
  // `what` names the document in messages ("agent spec"); `path` is the prefix of this
  // object's fields ("" at the top, "limits." inside limits). Throws unless `object` is
  // a JSON object.
  SpecReader(const json& object, std::string what, std::string path = {});

  bool has(std::string_view key);  // present and not null

  std::string required_string(std::string_view key, std::size_t max_length);
  std::optional<std::string> optional_string(std::string_view key, std::size_t max_length);
  bool optional_bool(std::string_view key, bool fallback);
  std::int64_t optional_int(std::string_view key, std::int64_t min, std::int64_t max,
                            std::int64_t fallback);
  double optional_number(std::string_view key, double min, double max, double fallback);
  // The value of an enum field: one of `allowed`, else an error listing them.
  std::string enum_value(std::string_view key, std::initializer_list<const char*> allowed,
                         std::optional<std::string> fallback);
  // An array of strings (absent: empty); `each` says what every item must be, for messages.
  json string_array(std::string_view key, const char* each = "a string");
  // Present (may be null) values, checked only for their JSON type.
  const json* optional_object(std::string_view key);
  const json* optional_array(std::string_view key);
  const json* any(std::string_view key);

  // Throws for a field that none of the calls above looked at. `also_allowed` lists
  // fields that are valid in this object but not read by this caller.
  void reject_unknown_fields(std::initializer_list<const char*> also_allowed = {});

  // "agent spec field \"limits.memory_mb\"": how messages name a field.
  std::string field_name(std::string_view key) const;
  [[noreturn]] void fail(std::string_view key, const std::string& problem) const;
  // "... field \"image\" is required", with a hint naming a present field that looks like
  // a misspelling of it ("imgae"), then `hint`.
  [[noreturn]] void missing(std::string_view key, std::string hint = {}) const;

  const std::string& what() const { return what_; }
  const std::string& path() const { return path_; }

 private:
  const json* lookup(std::string_view key);

  const json& object_;
  std::string what_;
  std::string path_;
  std::set<std::string, std::less<>> seen_;
};

}  // namespace orch
