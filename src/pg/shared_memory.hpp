// Named structs in shared memory, for a library in shared_preload_libraries: asked for
// while preloading, made by the postmaster (again after every crash restart), found by
// every process. One pair of hooks serves every struct.
#pragma once

#include <cstddef>

namespace orch::pg {

// From _PG_init while preloading. After the postmaster has made the shared memory,
// *where points to the struct in every process (nullptr where the library was not
// preloaded); `init` runs once, in the postmaster, on the new memory.
void request_shared_struct(const char* name, std::size_t size, void (*init)(void* memory), void** where);

}  // namespace orch::pg
