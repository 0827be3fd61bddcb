// notifier: formats findings into a message for a channel.
// Input (stdin, JSON): {"findings": [...], "repo": "...", "channel": "..."}.
// Output (stdout, JSON): {"channel", "message", "findings", "highest_severity"}.
// It has no network (the sandbox's default), so it formats and hands the message back;
// a deployment that delivers it gives the agent allow_network and a webhook secret.
#include <iostream>
#include <iterator>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

using nlohmann::json;

int main() {
  std::string raw((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  json input = json::parse(raw, nullptr, false);
  if (input.is_discarded() || !input.is_object() || !input.contains("findings") || !input["findings"].is_array()) {
    std::cerr << "notifier: the input must be a JSON object with a \"findings\" array\n";
    return 2;
  }
  static const std::map<std::string, int> rank = {{"low", 1}, {"medium", 2}, {"high", 3}};
  std::map<std::string, int> by_rule;
  std::string highest = "none";
  for (const auto& finding : input["findings"]) {
    std::string severity = finding.value("severity", "low");
    if (rank.count(severity) && (highest == "none" || rank.at(severity) > rank.at(highest))) highest = severity;
    by_rule[finding.value("rule", "unknown")]++;
  }
  std::string repo = input.value("repo", "the repository");
  std::string message = repo + ": " + std::to_string(input["findings"].size()) + " finding(s), highest severity " + highest;
  for (const auto& [rule, count] : by_rule) message += "\n- " + rule + " x" + std::to_string(count);
  std::cerr << "notifier: formatted a message for " << input.value("channel", "#security") << "\n";
  std::cout << json{{"channel", input.value("channel", "#security")}, {"message", message},
                    {"findings", input["findings"].size()}, {"highest_severity", highest}}.dump() << "\n";
  return 0;
}
