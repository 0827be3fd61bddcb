// libFuzzer target: the JSON Schema validator on arbitrary (schema, instance) pairs.
// An input is a schema and an instance separated by the first NUL byte (or, if there is
// none, the first newline). Both must parse as JSON; then compiling may refuse the
// schema and validating may refuse a too-deep instance (UserError), but nothing may
// crash, hang or trip ASan/UBSan.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/common/user_error.hpp"
#include "core/schema/json_schema.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  std::size_t cut = input.find('\0');
  if (cut == std::string::npos) cut = input.find('\n');
  if (cut == std::string::npos) return 0;
  auto schema = nlohmann::json::parse(input.substr(0, cut), nullptr, false);
  auto instance = nlohmann::json::parse(input.substr(cut + 1), nullptr, false);
  if (schema.is_discarded() || instance.is_discarded()) return 0;
  try {
    auto compiled = orch::schema::Schema::compile(schema);
    auto violations = compiled->validate(instance);
    if (violations.empty() != compiled->is_valid(instance)) __builtin_trap();  // the two must agree
    (void)orch::schema::describe(violations);
  } catch (const orch::UserError&) {
  }
  return 0;
}
