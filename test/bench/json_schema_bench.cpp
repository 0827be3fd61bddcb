// Benchmark: validating a 10 MB instance against a typical capability schema.
// Prints the figure, a baseline measured in the same run on the same machine (parsing the
// same 10 MB with nlohmann/json: the validator cannot do better than reading the
// document once) and the ratio. Median of 5 after a warm-up. No assertions: it measures.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/schema/json_schema.hpp"

using nlohmann::json;

namespace {

const char* kSchema = R"({
  "type": "object", "required": ["repo", "findings"],
  "properties": {
    "repo": {"type": "string", "minLength": 1, "maxLength": 200},
    "scanned_at": {"type": "string", "format": "date-time"},
    "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}}
  },
  "additionalProperties": false,
  "$defs": {"finding": {
    "type": "object", "required": ["id", "rule", "severity", "file", "line"],
    "properties": {
      "id": {"type": "integer", "minimum": 1},
      "rule": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"},
      "severity": {"enum": ["low", "medium", "high"]},
      "file": {"type": "string", "maxLength": 500},
      "line": {"type": "integer", "minimum": 1},
      "excerpt": {"type": "string"},
      "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "maxItems": 10}
    },
    "additionalProperties": false
  }}
})";

std::string make_instance(std::size_t target_bytes) {
  const char* severities[] = {"low", "medium", "high"};
  const char* rules[] = {"aws-access-key", "private-key", "password-assignment", "generic-token"};
  json findings = json::array();
  std::size_t bytes = 0;
  for (int i = 1; bytes < target_bytes; ++i) {
    json finding = {{"id", i}, {"rule", rules[i % 4]}, {"severity", severities[i % 3]},
                    {"file", "src/services/payments/handler_" + std::to_string(i % 977) + ".py"},
                    {"line", 1 + i % 4000},
                    {"excerpt", "    api_key = \"AKIA" + std::to_string(100000000 + i) + "EXAMPLE\"  # TODO remove"},
                    {"tags", {"secret", "credentials", "ci-" + std::to_string(i % 7)}}};
    bytes += finding.dump().size() + 1;
    findings.push_back(std::move(finding));
  }
  return json{{"repo", "payments-api"}, {"scanned_at", "2026-11-23T21:00:00Z"}, {"findings", findings}}.dump();
}

template <typename Fn>
double median_seconds(Fn&& fn, int repetitions) {
  fn();  // warm-up
  std::vector<double> times;
  for (int i = 0; i < repetitions; ++i) {
    auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t megabytes = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10;
  int repetitions = argc > 2 ? std::atoi(argv[2]) : 5;
  std::string text = make_instance(megabytes * 1000 * 1000);
  json instance = json::parse(text);
  auto schema = orch::schema::Schema::compile(json::parse(kSchema));
  if (!schema->is_valid(instance)) {
    std::fprintf(stderr, "benchmark instance is not valid: %s\n",
                 orch::schema::describe(schema->validate(instance)).c_str());
    return 1;
  }
  std::size_t sink = 0;  // keeps the parse from being optimised away
  double parse = median_seconds([&] { sink += json::parse(text).size(); }, repetitions);
  double validate = median_seconds([&] { sink += schema->validate(instance).size(); }, repetitions);
  std::printf("%-38s %12s %12s %8s\n", "workload", "figure", "baseline", "ratio");
  std::printf("%-38s %10.1f ms %10.1f ms %7.2fx\n",
              ("json-schema-validate-" + std::to_string(text.size() / 1000000) + "MB").c_str(),
              validate * 1000, parse * 1000, validate / parse);
  std::printf("(figure: validating %zu bytes, %zu findings; baseline: parsing the same bytes; "
              "median of %d)\n", text.size(), instance["findings"].size(), repetitions + static_cast<int>(sink * 0));
  return 0;
}
