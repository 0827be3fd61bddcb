// URI references as JSON Schema uses them ($id, $ref, $dynamicRef, $schema): resolved
// against a base URI by RFC 3986 section 5.2, without normalising case or
// %-encoding (JSON Schema compares identifiers as strings once resolved).
#pragma once

#include <string>
#include <string_view>

namespace orch::schema {

// `reference` resolved against `base` ("" when there is none: then the reference stays as
// it is, relative). Linear in the lengths; never fails (anything is a URI reference here).
std::string resolve_uri(std::string_view base, std::string_view reference);

// "http://x/y.json#/a" -> {"http://x/y.json", "/a"}; "#" -> {"", ""}. The fragment is
// returned %-decoded.
struct UriAndFragment {
  std::string uri;
  std::string fragment;
  bool has_fragment = false;
};
UriAndFragment split_fragment(std::string_view uri);

// Whether `uri` has a scheme ("https:", "urn:"): an absolute URI, as registered schemas'
// identifiers must be.
bool has_scheme(std::string_view uri);

}  // namespace orch::schema
