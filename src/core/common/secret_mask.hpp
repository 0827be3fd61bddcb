// Masks secret values in what containers print (logs, stderr, output) before it is stored:
// a container that prints its environment must not leak the secrets it was given into
// tables that operators can read.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace orch {

// What a masked value is replaced with.
inline constexpr std::string_view kSecretMask = "***";

// Values shorter than this are never masked: a secret "1" or "yes" would turn every
// 1 and every "yes" in every log into ***, destroying the log while protecting nothing
// (a 3-byte secret can be guessed anyway). GitHub Actions and GitLab CI do the same
// (GitLab requires masked variables to be at least 8 characters).
inline constexpr std::size_t kMinSecretLength = 4;

// `text` with every occurrence of every value (of at least kMinSecretLength bytes)
// replaced by "***". Also masked: each value as JSON text would carry it (a value with a
// quote, backslash, control character or non-ASCII character appears escaped in JSON
// that a container prints, both as nlohmann and as Python's json.dumps write it).
// Occurrences that overlap or touch are masked as one "***", so a value containing
// another, or two values overlapping, are masked whole, never leaving part of either.
std::string mask_secrets(std::string_view text, const std::vector<std::string>& values);

// The same for every string value and every object key in `doc`, in place. Iterative:
// safe at any depth. If two keys of one object mask to the same text, the later ones get
// " (2)", " (3)", ... appended rather than overwriting a value.
void mask_secrets(nlohmann::json& doc, const std::vector<std::string>& values);

}  // namespace orch
