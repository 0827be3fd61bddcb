// Postgres array literals, for passing an array to SPI as one text parameter
// ($1::bigint[], $2::jsonb[]): the scheduler records a claim round's outcomes in one call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace orch {

class ArrayLiteral {
 public:
  ArrayLiteral& add(std::int64_t value);
  // Any text (JSON, messages with quotes and backslashes); nullopt is the SQL NULL element.
  ArrayLiteral& add(const std::optional<std::string>& value);
  std::size_t size() const { return size_; }
  std::string str() const { return body_ + "}"; }

 private:
  void separate();
  std::string body_ = "{";
  std::size_t size_ = 0;
};

std::string array_literal(const std::vector<std::int64_t>& values);

}  // namespace orch
