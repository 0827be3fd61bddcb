// libFuzzer target: the JSON Schema validator on arbitrary (schema, instance) pairs.
// An input is a schema and an instance separated by the first NUL byte (or, if there is
// none, the first newline). Both must parse as JSON; then compiling may refuse the
// schema and validating may refuse a too-deep instance (UserError), but nothing may
// crash, hang or trip ASan/UBSan. Both are parsed without a depth limit on purpose: the
// validator must be safe on any document, not only on what parse_json_limited() lets
// through. Patterns are matched by RE2, so "hang" includes exponential patterns. The text
// helpers that guard what containers print run on the same input.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/common/json_limits.hpp"
#include "core/common/secret_mask.hpp"
#include "core/common/text_sanitize.hpp"
#include "core/common/user_error.hpp"
#include "core/schema/json_schema.hpp"

namespace {

// parse_json_limited and check_storable_in_jsonb on the whole input; the depth they
// accept must be the depth find_too_deep() agrees with.
void json_checks(const std::string& input) {
  nlohmann::json parsed = orch::parse_json_limited(input, 64);
  if (orch::find_too_deep(parsed, 64)) __builtin_trap();
  orch::check_storable_in_jsonb(parsed);
  orch::mask_secrets(parsed, {"secret", input.substr(0, 8)});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  if (!orch::is_clean_text(orch::sanitize_text(input))) __builtin_trap();
  (void)orch::mask_secrets(input, {input.substr(0, size / 3), input.substr(size / 2)});
  try {
    json_checks(input);
  } catch (const orch::UserError&) {
  }
  std::size_t cut = input.find('\0');
  if (cut == std::string::npos) cut = input.find('\n');
  if (cut == std::string::npos) return 0;
  auto schema = nlohmann::json::parse(input.substr(0, cut), nullptr, false);
  auto instance = nlohmann::json::parse(input.substr(cut + 1), nullptr, false);
  if (schema.is_discarded() || instance.is_discarded()) return 0;
  try {
    // The schema is also a registered document that it can $ref by URI, and its base URI
    // is another one's: references across documents get fuzzed too.
    orch::schema::Documents documents = {{"https://example.com/fuzz/shared", schema}};
    orch::schema::CompileOptions options;
    options.documents = &documents;
    options.base_uri = "https://example.com/fuzz/root";
    options.format_assertion = size % 2 == 0;  // half the inputs check formats too
    auto compiled = orch::schema::Schema::compile(schema, options);
    auto violations = compiled->validate(instance);
    if (violations.empty() != compiled->is_valid(instance)) __builtin_trap();  // the two must agree
    (void)orch::schema::describe(violations);
  } catch (const orch::UserError&) {
  }
  return 0;
}
