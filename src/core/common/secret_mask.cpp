#include "core/common/secret_mask.hpp"

#include <algorithm>
#include <utility>

namespace orch {

using json = nlohmann::json;

namespace {

// Every text to look for: each value, and each value as it appears inside a JSON string.
std::vector<std::string> needles(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& value : values) {
    if (value.size() < kMinSecretLength) continue;
    out.push_back(value);
    // Escaped as nlohmann writes JSON (UTF-8 kept) and as json.dumps does (\uXXXX for
    // anything not ASCII); invalid UTF-8 is replaced rather than thrown on, since the
    // escaped form of such a value cannot appear in valid JSON anyway.
    for (bool ascii : {false, true}) {
      std::string escaped = json(value).dump(-1, ' ', ascii, json::error_handler_t::replace);
      escaped = escaped.substr(1, escaped.size() - 2);  // without the quotes
      if (escaped.size() >= kMinSecretLength) out.push_back(std::move(escaped));
    }
  }
  // Longest first, then without duplicates: the order only matters for speed here, since
  // every occurrence of every needle is marked before anything is replaced.
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string mask(std::string_view text, const std::vector<std::string>& needles) {
  // Covered byte ranges [begin, end), merged: marking all occurrences first and replacing
  // after means no needle's replacement can hide (or split) an occurrence of another.
  std::vector<std::pair<std::size_t, std::size_t>> covered;
  for (const std::string& needle : needles) {
    for (std::size_t at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + 1))
      covered.emplace_back(at, at + needle.size());
  }
  if (covered.empty()) return std::string(text);
  std::sort(covered.begin(), covered.end());
  std::string out;
  out.reserve(text.size());
  std::size_t done = 0;  // text before `done` is copied or masked
  for (std::size_t i = 0; i < covered.size();) {
    std::size_t begin = covered[i].first, end = covered[i].second;
    for (++i; i < covered.size() && covered[i].first <= end; ++i) end = std::max(end, covered[i].second);
    out.append(text.substr(done, begin - done));
    out += kSecretMask;
    done = end;
  }
  out.append(text.substr(done));
  return out;
}

}  // namespace

std::string mask_secrets(std::string_view text, const std::vector<std::string>& values) {
  return mask(text, needles(values));
}

void mask_secrets(json& doc, const std::vector<std::string>& values) {
  std::vector<std::string> wanted = needles(values);
  if (wanted.empty()) return;
  std::vector<json*> pending{&doc};
  while (!pending.empty()) {
    json* value = pending.back();
    pending.pop_back();
    if (value->is_string()) {
      std::string& text = value->get_ref<std::string&>();
      std::string masked = mask(text, wanted);
      if (masked != text) text = std::move(masked);
    } else if (value->is_array()) {
      for (json& item : *value) pending.push_back(&item);
    } else if (value->is_object()) {
      // Rename keys first (moving a json value is shallow), then visit the values: the
      // pointers pushed below stay valid because nothing in this object changes after.
      std::vector<std::pair<std::string, std::string>> renames;
      for (auto it = value->begin(); it != value->end(); ++it) {
        std::string masked = mask(it.key(), wanted);
        if (masked != it.key()) renames.emplace_back(it.key(), std::move(masked));
      }
      for (auto& [from, to] : renames) {
        json moved = std::move((*value)[from]);
        value->erase(from);
        std::string key = to;
        for (int n = 2; value->contains(key); ++n) key = to + " (" + std::to_string(n) + ")";
        (*value)[key] = std::move(moved);
      }
      for (auto& item : value->items()) pending.push_back(&item.value());
    }
  }
}

}  // namespace orch
