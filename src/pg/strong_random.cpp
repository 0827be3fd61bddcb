#include "pg/strong_random.hpp"

#include <array>
#include <cstring>
#include <stdexcept>

#include "pg/boundary.hpp"

extern "C" {
#include "miscadmin.h"
}

namespace orch::pg {

namespace {

constexpr std::size_t kBlock = 4096;
std::array<unsigned char, kBlock> block;
std::size_t used = kBlock;  // nothing drawn yet
int drawn_by = 0;           // the process id that drew `block`

}  // namespace

void strong_random(unsigned char* out, std::size_t size) {
  if (size > 64) throw std::logic_error("strong_random: at most 64 bytes a call");
  if (used + size > kBlock || drawn_by != MyProcPid) {
    if (!guard([] { return pg_strong_random(block.data(), block.size()); }))
      throw std::runtime_error("could not generate random bytes");
    used = 0;
    drawn_by = MyProcPid;
  }
  std::memcpy(out, block.data() + used, size);
  std::memset(block.data() + used, 0, size);  // handed out once
  used += size;
}

}  // namespace orch::pg
