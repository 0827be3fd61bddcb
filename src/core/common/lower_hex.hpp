// Bytes as lowercase hexadecimal, two digits a byte: the form of W3C trace and span ids and
// of a UUID's digits.
#pragma once

#include <cstddef>
#include <string>

namespace orch {

std::string lower_hex(const unsigned char* bytes, std::size_t size);

}  // namespace orch
