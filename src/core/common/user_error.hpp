// An error caused by what the user asked for (bad spec, bad name, ...), as opposed to a
// bug. The Postgres boundary turns it into ereport(ERROR) with its SQLSTATE, message,
// detail and hint; the core never sees Postgres, so it carries the SQLSTATE as text.
#pragma once

#include <stdexcept>
#include <string>

namespace orch {

// SQLSTATE codes the core uses, by their Postgres names.
namespace sqlstate {
inline constexpr const char* invalid_parameter_value = "22023";
inline constexpr const char* invalid_text_representation = "22P02";
inline constexpr const char* program_limit_exceeded = "54000";
inline constexpr const char* object_not_in_prerequisite_state = "55000";
// What PostgreSQL reports for a \u0000 it cannot convert to text.
inline constexpr const char* untranslatable_character = "22P05";
}  // namespace sqlstate

class UserError : public std::runtime_error {
 public:
  UserError(std::string message, std::string detail = {}, std::string hint = {},
            const char* sqlstate = sqlstate::invalid_parameter_value)
      : std::runtime_error(std::move(message)),
        detail_(std::move(detail)),
        hint_(std::move(hint)),
        sqlstate_(sqlstate) {}

  const std::string& detail() const { return detail_; }
  const std::string& hint() const { return hint_; }
  const char* sqlstate() const { return sqlstate_; }

 private:
  std::string detail_;
  std::string hint_;
  const char* sqlstate_;
};

}  // namespace orch
