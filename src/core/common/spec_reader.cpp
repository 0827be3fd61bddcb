#include "core/common/spec_reader.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/common/user_error.hpp"

namespace orch {

const char* json_type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::object: return "object";
    case json::value_t::array: return "array";
    case json::value_t::string: return "string";
    case json::value_t::boolean: return "boolean";
    case json::value_t::null: return "null";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "number";
    default: return "unknown";
  }
}

namespace {

// Edits (insert, delete, replace, swap two neighbours) between two field names, up to
// `limit` + 1: enough to tell a typo from another name.
std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t limit) {
  if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return limit + 1;
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return std::min(d[a.size()][b.size()], limit + 1);
}

// Whether `written` looks like a misspelling of `meant`: at most one edit for short names,
// two from six characters on, and not the same name.
bool misspelling_of(std::string_view written, std::string_view meant) {
  std::size_t limit = meant.size() >= 6 ? 2 : 1;
  return written != meant && edit_distance(written, meant, limit) <= limit;
}

// A short rendering of a bad value for messages: whole if short, else its type.
std::string show(const json& value) {
  std::string text = value.dump();
  if (text.size() <= 40) return text;
  return std::string("a long ") + json_type_name(value);
}

}  // namespace

SpecReader::SpecReader(const json& object, std::string what, std::string path)
    : object_(object), what_(std::move(what)), path_(std::move(path)) {
  if (!object_.is_object()) {
    std::string where = path_.empty() ? what_
                                      : what_ + " field \"" +
                                            path_.substr(0, path_.size() - 1) + "\"";
    throw UserError(where + " must be a JSON object, not " + json_type_name(object_));
  }
}

std::string SpecReader::field_name(std::string_view key) const {
  return what_ + " field \"" + path_ + std::string(key) + "\"";
}

void SpecReader::fail(std::string_view key, const std::string& problem) const {
  throw UserError("invalid " + field_name(key) + ": " + problem);
}

const json* SpecReader::lookup(std::string_view key) {
  seen_.emplace(key);
  auto it = object_.find(std::string(key));
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool SpecReader::has(std::string_view key) { return lookup(key) != nullptr; }

const json* SpecReader::any(std::string_view key) { return lookup(key); }

std::optional<std::string> SpecReader::optional_string(std::string_view key,
                                                       std::size_t max_length) {
  const json* value = lookup(key);
  if (!value) return std::nullopt;
  if (!value->is_string())
    fail(key, std::string("must be a string, not ") + json_type_name(*value));
  const auto& text = value->get_ref<const std::string&>();
  if (text.size() > max_length)
    fail(key, "is longer than " + std::to_string(max_length) + " bytes");
  if (text.find('\0') != std::string::npos) fail(key, "must not contain NUL characters");
  return text;
}

void SpecReader::missing(std::string_view key, std::string hint) const {
  // "imgae" given where "image" is required: say so, rather than only that "image" is missing.
  for (auto it = object_.begin(); it != object_.end(); ++it)
    if (misspelling_of(it.key(), key)) {
      hint = "Is \"" + path_ + it.key() + "\" a misspelling of \"" + path_ + std::string(key) + "\"?" +
             (hint.empty() ? "" : " " + hint);
      break;
    }
  throw UserError(field_name(key) + " is required", {}, hint);
}

std::string SpecReader::required_string(std::string_view key, std::size_t max_length) {
  auto text = optional_string(key, max_length);
  if (!text) missing(key);
  if (text->empty()) fail(key, "must not be empty");
  return *text;
}

bool SpecReader::optional_bool(std::string_view key, bool fallback) {
  const json* value = lookup(key);
  if (!value) return fallback;
  if (!value->is_boolean())
    fail(key, std::string("must be true or false, not ") + show(*value));
  return value->get<bool>();
}

std::int64_t SpecReader::optional_int(std::string_view key, std::int64_t min,
                                      std::int64_t max, std::int64_t fallback) {
  const json* value = lookup(key);
  if (!value) return fallback;
  std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  bool integral = value->is_number_integer() ||
                  (value->is_number_float() && std::isfinite(value->get<double>()) &&
                   std::floor(value->get<double>()) == value->get<double>());
  if (!integral) fail(key, "must be " + range + ", not " + show(*value));
  double as_double = value->get<double>();
  if (as_double < static_cast<double>(min) || as_double > static_cast<double>(max))
    fail(key, "must be " + range + ", not " + show(*value));
  return static_cast<std::int64_t>(as_double);
}

double SpecReader::optional_number(std::string_view key, double min, double max,
                                   double fallback) {
  const json* value = lookup(key);
  if (!value) return fallback;
  auto range = [&] {
    json lo = min, hi = max;
    return "a number from " + lo.dump() + " to " + hi.dump();
  };
  if (!value->is_number()) fail(key, "must be " + range() + ", not " + show(*value));
  double number = value->get<double>();
  if (!std::isfinite(number) || number < min || number > max)
    fail(key, "must be " + range() + ", not " + show(*value));
  return number;
}

std::string SpecReader::enum_value(std::string_view key,
                                   std::initializer_list<const char*> allowed,
                                   std::optional<std::string> fallback) {
  std::string list;
  for (const char* name : allowed) list += std::string(list.empty() ? "" : ", ") + name;
  const json* value = lookup(key);
  if (!value) {
    if (fallback) return *fallback;
    missing(key, "Use one of " + list + ".");
  }
  if (value->is_string()) {
    const auto& text = value->get_ref<const std::string&>();
    for (const char* name : allowed)
      if (text == name) return text;
  }
  throw UserError("invalid " + field_name(key) + ": " + show(*value) + " is not one of " +
                  list);
}

const json* SpecReader::optional_object(std::string_view key) {
  const json* value = lookup(key);
  if (value && !value->is_object())
    fail(key, std::string("must be a JSON object, not ") + json_type_name(*value));
  return value;
}

const json* SpecReader::optional_array(std::string_view key) {
  const json* value = lookup(key);
  if (value && !value->is_array())
    fail(key, std::string("must be a JSON array, not ") + json_type_name(*value));
  return value;
}

json SpecReader::string_array(std::string_view key, const char* each) {
  json out = json::array();
  const json* list = optional_array(key);
  if (!list) return out;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const json& item = (*list)[i];
    std::string field = std::string(key) + "[" + std::to_string(i) + "]";
    if (!item.is_string()) fail(field, std::string("must be ") + each + ", not " + json_type_name(item));
    if (item.get_ref<const std::string&>().find('\0') != std::string::npos)
      fail(field, "must not contain NUL characters");
    out.push_back(item);
  }
  return out;
}

void SpecReader::reject_unknown_fields(std::initializer_list<const char*> also_allowed) {
  for (const char* key : also_allowed) seen_.emplace(key);
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (seen_.count(it.key())) continue;
    std::string known, meant;
    for (const auto& name : seen_) {
      known += std::string(known.empty() ? "" : ", ") + name;
      if (meant.empty() && misspelling_of(it.key(), name)) meant = name;
    }
    throw UserError(what_ + " has an unknown field \"" + path_ + it.key() + "\"", {},
                    (meant.empty() ? "" : "Did you mean \"" + path_ + meant + "\"? ") + "Known fields" +
                        (path_.empty() ? std::string() : " of \"" + path_.substr(0, path_.size() - 1) + "\"") +
                        ": " + known + ".");
  }
}

}  // namespace orch
