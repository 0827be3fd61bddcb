#include "core/nats/oversized_event.hpp"

#include <nlohmann/json.hpp>

#include "core/common/json_limits.hpp"

namespace orch::nats {

bool fits(std::size_t size, std::int64_t max_payload) {
  return max_payload <= 0 || size + kHeaderAllowance <= static_cast<std::uint64_t>(max_payload);
}

std::string reduced_event(const std::string& payload, std::int64_t event_row) {
  using nlohmann::json;
  json original;
  try {
    original = parse_json_limited(payload);
  } catch (const std::exception&) {
    original = json::object();
  }
  if (!original.is_object()) original = json::object();
  json reduced = json::object();
  // Only short scalar strings are kept: the envelope is ours, but bounded all the same.
  auto keep_string = [&](const json& from, json& to, const char* key) {
    auto it = from.find(key);
    if (it != from.end() && it->is_string() && it->get_ref<const std::string&>().size() <= 512) to[key] = *it;
  };
  for (const char* key : {"specversion", "id", "source", "type", "subject", "time", "datacontenttype"})
    keep_string(original, reduced, key);
  json data = json::object();
  auto original_data = original.find("data");
  if (original_data != original.end() && original_data->is_object()) {
    for (const char* key : {"project_id", "run_id", "attempt"}) {
      auto it = original_data->find(key);
      if (it != original_data->end() && it->is_number()) data[key] = *it;
    }
    for (const char* key : {"node_key", "status"}) keep_string(*original_data, data, key);
  }
  data["truncated"] = true;
  data["size_bytes"] = payload.size();
  reduced["data"] = data;
  reduced["dataref"] = "orchestration.events/" + std::to_string(event_row);
  return reduced.dump();
}

}  // namespace orch::nats
