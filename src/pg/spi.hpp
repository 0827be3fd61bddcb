// SPI for the background workers: run a SQL statement with text parameters and get its
// rows as strings. Plans are prepared once per statement and kept (statements are string
// literals, so their address identifies them). Every Postgres call is guarded.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace orch::pg {

using Value = std::optional<std::string>;  // nullopt is SQL NULL

struct Rows {
  std::vector<std::vector<Value>> rows;
  std::size_t size() const { return rows.size(); }
  const Value& at(std::size_t row, std::size_t column) const { return rows[row][column]; }
};

// Runs `sql` (a string literal: its plan is cached by address) with parameters passed as
// text ($1, $2, ... cast them in the SQL: $1::bigint). Must run inside a transaction with
// SPI connected (see transaction.hpp).
Rows spi_run(const char* sql, const std::vector<Value>& params = {});

// Drops every cached plan; the worker calls it when the extension goes away.
void spi_forget_plans();

}  // namespace orch::pg
