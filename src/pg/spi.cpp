#include "pg/spi.hpp"

#include "pg/boundary.hpp"

extern "C" {
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/builtins.h"
}

#include <stdexcept>
#include <unordered_map>

namespace orch::pg {
namespace {

std::unordered_map<const char*, SPIPlanPtr>& plans() {
  static std::unordered_map<const char*, SPIPlanPtr> cache;
  return cache;
}

SPIPlanPtr plan_for(const char* sql, int nargs) {
  auto it = plans().find(sql);
  if (it != plans().end()) return it->second;
  std::vector<Oid> types(static_cast<std::size_t>(nargs), TEXTOID);
  SPIPlanPtr plan = guard([&] {
    SPIPlanPtr prepared = SPI_prepare(sql, nargs, types.data());
    if (!prepared)
      elog(ERROR, "pg_orchestration: SPI_prepare failed (%s): %s",
           SPI_result_code_string(SPI_result), sql);
    SPI_keepplan(prepared);
    return prepared;
  });
  plans().emplace(sql, plan);
  return plan;
}

}  // namespace

Rows spi_run(const char* sql, const std::vector<Value>& params) {
  int nargs = static_cast<int>(params.size());
  SPIPlanPtr plan = plan_for(sql, nargs);
  std::vector<Datum> values(params.size());
  std::vector<char> nulls(params.size(), ' ');

  // The cells are copied out of SPI's memory inside the guard, into palloc'd C strings,
  // and from there into std::string after it.
  struct Cells {
    char** cells;
    char** names;
    uint64 rows;
    int columns;
  };
  Cells result = guard([&] {
    for (int i = 0; i < nargs; ++i) {
      if (params[i]) values[i] = CStringGetTextDatum(params[i]->c_str());
      else nulls[i] = 'n';
    }
    int rc = SPI_execute_plan(plan, values.data(), nulls.data(), false, 0);
    if (rc < 0) elog(ERROR, "pg_orchestration: SPI_execute_plan failed (%s): %s",
                     SPI_result_code_string(rc), sql);
    Cells cells{nullptr, nullptr, 0, 0};
    if (SPI_tuptable) {
      cells.rows = SPI_processed;
      cells.columns = SPI_tuptable->tupdesc->natts;
      cells.names = static_cast<char**>(palloc0(sizeof(char*) * (cells.columns + 1)));
      for (int c = 0; c < cells.columns; ++c) cells.names[c] = SPI_fname(SPI_tuptable->tupdesc, c + 1);
      cells.cells = static_cast<char**>(palloc0(sizeof(char*) * (cells.rows * cells.columns + 1)));
      for (uint64 r = 0; r < cells.rows; ++r)
        for (int c = 0; c < cells.columns; ++c)
          cells.cells[r * cells.columns + c] =
              SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1);
      SPI_freetuptable(SPI_tuptable);
    }
    return cells;
  });

  Rows rows;
  for (int c = 0; c < result.columns; ++c) rows.columns.emplace_back(result.names[c] ? result.names[c] : "");
  rows.rows.resize(result.rows);
  for (uint64 r = 0; r < result.rows; ++r) {
    auto& row = rows.rows[r];
    row.reserve(static_cast<std::size_t>(result.columns));
    for (int c = 0; c < result.columns; ++c) {
      const char* cell = result.cells[r * result.columns + c];
      row.push_back(cell ? Value(cell) : std::nullopt);
    }
  }
  if (result.cells) guard([&] { pfree(result.cells); });
  if (result.names) guard([&] { pfree(result.names); });
  return rows;
}

std::size_t RowReader::index(const char* column) const {
  for (std::size_t i = 0; i < rows_.columns.size(); ++i)
    if (rows_.columns[i] == column) return i;
  throw std::runtime_error(std::string("pg_orchestration: ") + function_ + " returned no column \"" + column + "\"");
}

const Value& RowReader::value(std::size_t row, const char* column) const { return rows_.rows.at(row)[index(column)]; }

const std::string& RowReader::text(std::size_t row, const char* column) const {
  const Value& cell = value(row, column);
  if (!cell) throw std::runtime_error(std::string("pg_orchestration: ") + function_ + " returned NULL " + column);
  return *cell;
}

std::int64_t RowReader::int64(std::size_t row, const char* column) const {
  const std::string& cell = text(row, column);
  try {
    std::size_t used = 0;
    std::int64_t number = std::stoll(cell, &used);
    if (used == cell.size()) return number;
  } catch (const std::exception&) {
  }
  throw std::runtime_error(std::string("pg_orchestration: ") + function_ + " returned " + column + " \"" + cell +
                           "\", not an integer");
}

int RowReader::int32(std::size_t row, const char* column) const { return static_cast<int>(int64(row, column)); }

bool RowReader::boolean(std::size_t row, const char* column) const { return text(row, column) == "t"; }

void spi_forget_plans() {
  for (auto& [sql, plan] : plans()) guard([&] { SPI_freeplan(plan); });
  plans().clear();
}

}  // namespace orch::pg
