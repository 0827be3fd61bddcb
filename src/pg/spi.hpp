// SPI for the background workers: run a SQL statement with text parameters and get its
// rows as strings. Plans are prepared once per statement and kept (statements are string
// literals, so their address identifies them). Every Postgres call is guarded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace orch::pg {

using Value = std::optional<std::string>;  // nullopt is SQL NULL

struct Rows {
  std::vector<std::string> columns;  // the result's column names
  std::vector<std::vector<Value>> rows;
  std::size_t size() const { return rows.size(); }
  const Value& at(std::size_t row, std::size_t column) const { return rows[row][column]; }
};

// Reads a result's cells by column name, typed: what a decoder of a SQL function's rows
// uses (one decoder per function whose rows C++ reads, next to the code that reads them),
// so that the C++ and the SQL agree on names, not on positions kept in step by hand. A
// column the result lacks, a NULL where a value is needed, or text that is not the number
// asked for is an error that names the function and the column.
class RowReader {
 public:
  RowReader(const Rows& rows, const char* function) : rows_(rows), function_(function) {}
  std::size_t size() const { return rows_.size(); }
  const Value& value(std::size_t row, const char* column) const;
  const std::string& text(std::size_t row, const char* column) const;  // not NULL
  std::int64_t int64(std::size_t row, const char* column) const;
  int int32(std::size_t row, const char* column) const;
  bool boolean(std::size_t row, const char* column) const;

 private:
  std::size_t index(const char* column) const;
  const Rows& rows_;
  const char* function_;
};

// Runs `sql` (a string literal: its plan is cached by address) with parameters passed as
// text ($1, $2, ... cast them in the SQL: $1::bigint). Must run inside a transaction with
// SPI connected (see transaction.hpp).
Rows spi_run(const char* sql, const std::vector<Value>& params = {});

// Drops every cached plan; the worker calls it when the extension goes away.
void spi_forget_plans();

}  // namespace orch::pg
