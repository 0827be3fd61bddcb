#include "core/common/array_literal.hpp"

namespace orch {

void ArrayLiteral::separate() {
  if (size_++ > 0) body_ += ',';
}

ArrayLiteral& ArrayLiteral::add(std::int64_t value) {
  separate();
  body_ += std::to_string(value);
  return *this;
}

ArrayLiteral& ArrayLiteral::add(const std::optional<std::string>& value) {
  separate();
  if (!value) {
    body_ += "NULL";
    return *this;
  }
  // Always quoted: an element that is empty, is the word NULL, or holds braces, commas,
  // quotes, backslashes or white space is then read back exactly.
  body_ += '"';
  for (char c : *value) {
    if (c == '"' || c == '\\') body_ += '\\';
    body_ += c;
  }
  body_ += '"';
  return *this;
}

std::string array_literal(const std::vector<std::int64_t>& values) {
  ArrayLiteral literal;
  for (std::int64_t value : values) literal.add(value);
  return literal.str();
}

}  // namespace orch
