#include "core/schema/uri.hpp"

#include <cctype>
#include <optional>
#include <vector>

namespace orch::schema {
namespace {

struct Parts {
  std::optional<std::string_view> scheme, authority, query, fragment;
  std::string_view path;
};

std::size_t scheme_length(std::string_view text) {
  if (text.empty() || !std::isalpha(static_cast<unsigned char>(text[0]))) return 0;
  for (std::size_t i = 1; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == ':') return i;
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') return 0;
  }
  return 0;
}

Parts parse(std::string_view text) {
  Parts parts;
  if (std::size_t n = scheme_length(text)) {
    parts.scheme = text.substr(0, n);
    text.remove_prefix(n + 1);
  }
  if (std::size_t hash = text.find('#'); hash != std::string_view::npos) {
    parts.fragment = text.substr(hash + 1);
    text = text.substr(0, hash);
  }
  if (std::size_t question = text.find('?'); question != std::string_view::npos) {
    parts.query = text.substr(question + 1);
    text = text.substr(0, question);
  }
  if (text.substr(0, 2) == "//") {
    std::size_t slash = text.find('/', 2);
    parts.authority = text.substr(2, slash == std::string_view::npos ? std::string_view::npos : slash - 2);
    text = slash == std::string_view::npos ? std::string_view() : text.substr(slash);
  }
  parts.path = text;
  return parts;
}

// RFC 3986 5.2.4, on a list of segments: linear, whatever the input.
std::string remove_dot_segments(std::string_view path) {
  bool absolute = !path.empty() && path[0] == '/';
  std::vector<std::string_view> out;
  bool trailing_slash = false;
  std::size_t start = absolute ? 1 : 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    std::string_view segment = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    bool last = slash == std::string_view::npos;
    if (segment == ".") {
      trailing_slash = true;
    } else if (segment == "..") {
      if (!out.empty()) out.pop_back();
      trailing_slash = true;
    } else {
      out.push_back(segment);
      trailing_slash = false;
    }
    if (last) break;
    start = slash + 1;
  }
  std::string result = absolute ? "/" : "";
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i) result += '/';
    result += out[i];
  }
  if (trailing_slash && !out.empty()) result += '/';
  return result;
}

std::string merge(const Parts& base, std::string_view reference_path) {
  if (base.authority && base.path.empty()) return "/" + std::string(reference_path);
  std::size_t slash = base.path.rfind('/');
  if (slash == std::string_view::npos) return std::string(reference_path);
  return std::string(base.path.substr(0, slash + 1)) + std::string(reference_path);
}

std::string compose(const std::optional<std::string_view>& scheme, const std::optional<std::string_view>& authority,
                    std::string_view path, const std::optional<std::string_view>& query,
                    const std::optional<std::string_view>& fragment) {
  std::string out;
  if (scheme) (out += *scheme) += ':';
  if (authority) (out += "//") += *authority;
  out += path;
  if (query) (out += '?') += *query;
  if (fragment) (out += '#') += *fragment;
  return out;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool has_scheme(std::string_view uri) { return scheme_length(uri) > 0; }

std::string resolve_uri(std::string_view base_text, std::string_view reference) {
  Parts r = parse(reference);
  if (r.scheme) return compose(r.scheme, r.authority, remove_dot_segments(r.path), r.query, r.fragment);
  Parts base = parse(base_text);
  if (r.authority) return compose(base.scheme, r.authority, remove_dot_segments(r.path), r.query, r.fragment);
  if (r.path.empty())
    return compose(base.scheme, base.authority, base.path, r.query ? r.query : base.query, r.fragment);
  // A base without a scheme (a document with no $id): keep the path relative rather
  // than inventing a root.
  std::string path = r.path[0] == '/' ? std::string(r.path) : merge(base, r.path);
  bool rooted = base.scheme || base.authority || (!path.empty() && path[0] == '/');
  return compose(base.scheme, base.authority, rooted ? remove_dot_segments(path) : path, r.query, r.fragment);
}

UriAndFragment split_fragment(std::string_view uri) {
  UriAndFragment out;
  std::size_t hash = uri.find('#');
  out.uri = std::string(uri.substr(0, hash));
  if (hash == std::string_view::npos) return out;
  out.has_fragment = true;
  std::string_view fragment = uri.substr(hash + 1);
  for (std::size_t i = 0; i < fragment.size(); ++i) {
    if (fragment[i] == '%' && i + 2 < fragment.size() &&
        hex(fragment[i + 1]) >= 0 && hex(fragment[i + 2]) >= 0) {
      out.fragment += static_cast<char>(hex(fragment[i + 1]) * 16 + hex(fragment[i + 2]));
      i += 2;
    } else {
      out.fragment += fragment[i];
    }
  }
  return out;
}

}  // namespace orch::schema
