// security-scanner: finds leaked secrets and risky patterns in text.
// Input (stdin, JSON): {"text": "..."} or {"files": {"path": "content", ...}}.
// Output (stdout, JSON): {"findings": [{"rule", "severity", "file", "line", "excerpt"}],
// "scanned_bytes": N}. Exit 0; a malformed input exits 2 with the reason on stderr.
#include <iostream>
#include <iterator>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

using nlohmann::json;

namespace {

struct Rule {
  const char* name;
  const char* severity;
  std::regex pattern;
};

const std::vector<Rule>& rules() {
  static const std::vector<Rule> all = {
      {"aws-access-key", "high", std::regex("AKIA[0-9A-Z]{16}")},
      {"private-key", "high", std::regex("-----BEGIN [A-Z ]*PRIVATE KEY-----")},
      {"github-token", "high", std::regex("gh[pousr]_[A-Za-z0-9]{20,}")},
      {"password-assignment", "medium", std::regex("(password|passwd|pwd)\\s*[:=]\\s*\\S+", std::regex::icase)},
      {"generic-api-key", "medium", std::regex("(api[_-]?key|secret|token)\\s*[:=]\\s*['\"]?[A-Za-z0-9_\\-]{16,}", std::regex::icase)},
      {"http-url", "low", std::regex("http://[^\\s\"']+")},
  };
  return all;
}

std::string mask(const std::string& match) {
  return match.size() <= 8 ? match : match.substr(0, 6) + "..." + std::to_string(match.size()) + " chars";
}

void scan(const std::string& file, const std::string& text, json& findings) {
  std::size_t line_start = 0;
  int line = 1;
  while (line_start <= text.size()) {
    std::size_t end = text.find('\n', line_start);
    std::string content = text.substr(line_start, end == std::string::npos ? std::string::npos : end - line_start);
    if (content.size() <= 4000) {  // longer lines are data, not code
      for (const auto& rule : rules()) {
        std::smatch match;
        if (std::regex_search(content, match, rule.pattern))
          findings.push_back({{"rule", rule.name}, {"severity", rule.severity}, {"file", file},
                              {"line", line}, {"excerpt", mask(match.str())}});
      }
    }
    if (end == std::string::npos) break;
    line_start = end + 1;
    ++line;
  }
}

}  // namespace

int main() {
  std::string raw((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  json input = json::parse(raw, nullptr, false);
  if (input.is_discarded() || !input.is_object()) {
    std::cerr << "security-scanner: the input is not a JSON object\n";
    return 2;
  }
  json findings = json::array();
  std::size_t bytes = 0;
  if (input.contains("text") && input["text"].is_string()) {
    bytes += input["text"].get_ref<const std::string&>().size();
    scan("(text)", input["text"].get<std::string>(), findings);
  }
  if (input.contains("files") && input["files"].is_object())
    for (auto it = input["files"].begin(); it != input["files"].end(); ++it)
      if (it->is_string()) {
        bytes += it->get_ref<const std::string&>().size();
        scan(it.key(), it->get<std::string>(), findings);
      }
  std::cerr << "security-scanner: " << findings.size() << " finding(s) in " << bytes << " bytes\n";
  std::cout << json{{"findings", findings}, {"scanned_bytes", bytes}}.dump() << "\n";
  return 0;
}
