#include "core/schema/formats.hpp"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/schema/ecma_regex.hpp"

namespace orch::schema {
namespace {

using std::string_view;

bool digits(string_view s, std::size_t n) {
  if (s.size() != n) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}
int number(string_view s) { return std::atoi(std::string(s).c_str()); }
bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// RFC 3339 full-date.
bool date(string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  if (!digits(s.substr(0, 4), 4) || !digits(s.substr(5, 2), 2) || !digits(s.substr(8, 2), 2)) return false;
  int year = number(s.substr(0, 4)), month = number(s.substr(5, 2)), day = number(s.substr(8, 2));
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1) return false;
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return day <= days[month - 1] + (month == 2 && leap ? 1 : 0);
}

// RFC 3339 full-time; a leap second only where it is 23:59:60 in UTC.
bool time(string_view s) {
  if (s.size() < 9 || s[2] != ':' || s[5] != ':') return false;
  if (!digits(s.substr(0, 2), 2) || !digits(s.substr(3, 2), 2) || !digits(s.substr(6, 2), 2)) return false;
  int hour = number(s.substr(0, 2)), minute = number(s.substr(3, 2)), second = number(s.substr(6, 2));
  std::size_t i = 8;
  if (i < s.size() && s[i] == '.') {
    std::size_t start = ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == start) return false;
  }
  if (i >= s.size()) return false;
  int offset = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    if (i + 1 != s.size()) return false;
  } else if (s[i] == '+' || s[i] == '-') {
    string_view zone = s.substr(i + 1);
    if (zone.size() != 5 || zone[2] != ':' || !digits(zone.substr(0, 2), 2) || !digits(zone.substr(3, 2), 2)) return false;
    int zh = number(zone.substr(0, 2)), zm = number(zone.substr(3, 2));
    if (zh > 23 || zm > 59) return false;
    offset = (s[i] == '+' ? 1 : -1) * (zh * 60 + zm);
  } else {
    return false;
  }
  if (hour > 23 || minute > 59 || second > 60) return false;
  if (second == 60) {
    int utc = ((hour * 60 + minute - offset) % 1440 + 1440) % 1440;
    if (utc != 23 * 60 + 59) return false;
  }
  return true;
}

bool date_time(string_view s) {
  std::size_t t = s.find_first_of("Tt");
  return t == 10 && date(s.substr(0, 10)) && time(s.substr(11));
}

// RFC 3339 appendix A: P[nY][nM][nD][T[nH][nM][nS]] or PnW, in this order, at least one.
bool duration(string_view s) {
  if (s.size() < 2 || s[0] != 'P') return false;
  std::size_t i = 1;
  auto units = [&](const char* allowed) {
    int seen = 0;
    std::size_t next = 0;  // index into allowed: units must come in order
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      if (i >= s.size()) return -1;
      const char* unit = std::strchr(allowed + next, s[i]);
      if (!unit || s[i] == '\0') return -1;
      next = static_cast<std::size_t>(unit - allowed) + 1;
      ++i;
      ++seen;
    }
    return seen;
  };
  if (s.find('W') != string_view::npos) {
    int n = units("W");
    return n == 1 && i == s.size();
  }
  int date_units = units("YMD");
  if (date_units < 0) return false;
  if (i == s.size()) return date_units > 0;
  if (s[i] != 'T') return false;
  ++i;
  int time_units = units("HMS");
  return time_units > 0 && i == s.size();
}

bool hostname(string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = s.find('.', start);
    string_view label = s.substr(start, dot == string_view::npos ? string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!is_alnum(c) && c != '-') return false;
    if (label.size() >= 4 && label[2] == '-' && label[3] == '-' && !(label.substr(0, 2) == "xn" || label.substr(0, 2) == "XN"))
      return false;  // "--" in positions 3 and 4 is reserved for IDNA's xn--
    if (dot == string_view::npos) return true;
    start = dot + 1;
  }
}

bool ipv4(string_view s) {
  int parts = 0;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = s.find('.', start);
    string_view part = s.substr(start, dot == string_view::npos ? string_view::npos : dot - start);
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
    for (char c : part)
      if (c < '0' || c > '9') return false;
    if (number(part) > 255) return false;
    ++parts;
    if (dot == string_view::npos) break;
    start = dot + 1;
  }
  return parts == 4;
}

bool ipv6(string_view s) {
  if (s.empty()) return false;
  std::size_t groups = 0;
  bool compressed = false;
  std::size_t i = 0;
  if (s.substr(0, 2) == "::") {
    compressed = true;
    i = 2;
    if (i == s.size()) return true;
  } else if (s[0] == ':') {
    return false;
  }
  while (i < s.size()) {
    std::size_t end = s.find(':', i);
    string_view group = s.substr(i, end == string_view::npos ? string_view::npos : end - i);
    if (end == string_view::npos && group.find('.') != string_view::npos) {
      if (!ipv4(group)) return false;
      groups += 2;
      break;
    }
    if (group.empty() || group.size() > 4) return false;
    for (char c : group)
      if (!is_hex(c)) return false;
    ++groups;
    if (end == string_view::npos) break;
    if (end + 1 == s.size()) return false;  // a trailing single ':'
    if (s[end + 1] == ':') {
      if (compressed) return false;
      compressed = true;
      i = end + 2;
      if (i == s.size()) break;
    } else {
      i = end + 1;
    }
  }
  return compressed ? groups < 8 : groups == 8;
}

bool uuid(string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !is_hex(s[i])) return false;
  }
  return true;
}

bool json_pointer(string_view s) {
  if (s.empty()) return true;
  if (s[0] != '/') return false;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '~' && (i + 1 >= s.size() || (s[i + 1] != '0' && s[i + 1] != '1'))) return false;
  return true;
}

bool relative_json_pointer(string_view s) {
  std::size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || (i > 1 && s[0] == '0')) return false;
  string_view rest = s.substr(i);
  return rest == "#" || json_pointer(rest);
}

bool email_local(string_view local, bool international) {
  if (local.empty() || local.size() > 64) return false;
  if (local.size() >= 2 && local.front() == '"' && local.back() == '"') return true;
  if (local.front() == '.' || local.back() == '.' || local.find("..") != string_view::npos) return false;
  for (char c : local) {
    if (international && static_cast<unsigned char>(c) >= 0x80) continue;
    if (!is_alnum(c) && std::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) == string_view::npos) return false;
  }
  return true;
}

bool email(string_view s, bool international) {
  std::size_t at = s.rfind('@');
  if (at == string_view::npos) return false;
  string_view domain = s.substr(at + 1);
  if (!email_local(s.substr(0, at), international)) return false;
  if (domain.size() > 2 && domain.front() == '[' && domain.back() == ']') {
    string_view literal = domain.substr(1, domain.size() - 2);
    if (literal.substr(0, 5) == "IPv6:") return ipv6(literal.substr(5));
    return ipv4(literal);
  }
  if (international) return !domain.empty() && domain.find_first_of(" @") == string_view::npos;
  return hostname(domain);
}

// RFC 3986 (and RFC 3987 with `international`): the characters a URI may hold, valid
// %-escapes, and a scheme where one is required.
bool uri_characters(string_view s, bool international) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
      i += 2;
    } else if (c >= 0x80) {
      if (!international) return false;
    } else if (!is_alnum(static_cast<char>(c)) && string_view("-._~:/?#[]@!$&'()*+,;=").find(static_cast<char>(c)) == string_view::npos) {
      return false;
    }
  }
  return true;
}

bool uri(string_view s, bool international, bool relative_allowed) {
  if (!uri_characters(s, international)) return false;
  std::size_t colon = s.find(':');
  std::size_t first_special = s.find_first_of("/?#");
  bool has_scheme = colon != string_view::npos && colon > 0 && (first_special == string_view::npos || colon < first_special) &&
                    std::isalpha(static_cast<unsigned char>(s[0]));
  if (has_scheme)
    for (std::size_t i = 1; i < colon; ++i)
      if (!is_alnum(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.') has_scheme = false;
  if (!has_scheme && !relative_allowed) return false;
  // Brackets only around an IPv6 authority host; '#' at most once.
  std::size_t hash = s.find('#');
  if (hash != string_view::npos && s.find('#', hash + 1) != string_view::npos) return false;
  string_view rest = has_scheme ? s.substr(colon + 1) : s;
  if (rest.substr(0, 2) == "//") {
    string_view authority = rest.substr(2, rest.find_first_of("/?#", 2) == string_view::npos ? string_view::npos
                                                                                              : rest.find_first_of("/?#", 2) - 2);
    std::size_t at = authority.rfind('@');
    string_view host_port = at == string_view::npos ? authority : authority.substr(at + 1);
    if (!host_port.empty() && host_port[0] == '[') {
      std::size_t close = host_port.find(']');
      if (close == string_view::npos) return false;
      string_view port = host_port.substr(close + 1);
      if (!port.empty() && port[0] != ':') return false;
    } else {
      if (host_port.find_first_of("[]") != string_view::npos) return false;
      std::size_t port = host_port.find(':');
      if (port != string_view::npos)
        for (char c : host_port.substr(port + 1))
          if (c < '0' || c > '9') return false;
    }
    string_view after = rest.substr(2 + authority.size());
    if (after.find_first_of("[]") != string_view::npos) return false;
  } else if (rest.find_first_of("[]") != string_view::npos) {
    return false;
  }
  return true;
}

bool uri_template(string_view s) {
  bool open = false;
  for (char c : s) {
    if (c == '{') {
      if (open) return false;
      open = true;
    } else if (c == '}') {
      if (!open) return false;
      open = false;
    }
  }
  return !open;
}

bool regex(const std::string& s) {
  try {
    compile_ecma_pattern(s);
    return true;
  } catch (const PatternError& e) {
    return e.unsupported();  // valid ECMA-262, only not matchable here
  }
}

}  // namespace

bool format_matches(const std::string& format, const std::string& text) {
  string_view s = text;
  if (format == "date-time") return date_time(s);
  if (format == "date") return date(s);
  if (format == "time") return time(s);
  if (format == "duration") return duration(s);
  if (format == "email") return email(s, false);
  if (format == "idn-email") return email(s, true);
  if (format == "hostname") return hostname(s);
  if (format == "ipv4") return ipv4(s);
  if (format == "ipv6") return ipv6(s);
  if (format == "uuid") return uuid(s);
  if (format == "json-pointer") return json_pointer(s);
  if (format == "relative-json-pointer") return relative_json_pointer(s);
  if (format == "uri") return uri(s, false, false);
  if (format == "uri-reference") return uri(s, false, true);
  if (format == "iri") return uri(s, true, false);
  if (format == "iri-reference") return uri(s, true, true);
  if (format == "uri-template") return uri_template(s);
  if (format == "regex") return regex(text);
  return true;
}

}  // namespace orch::schema
