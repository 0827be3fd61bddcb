#include "pg/shared_memory.hpp"

extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

namespace orch::pg {
namespace {

struct Request {
  const char* name;
  std::size_t size;
  void (*init)(void*);
  void** where;
};

constexpr int kMaxRequests = 4;
Request requests[kMaxRequests];
int request_count = 0;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

void request_shared_memory() {
  if (previous_request_hook) previous_request_hook();
  for (int i = 0; i < request_count; ++i) RequestAddinShmemSpace(MAXALIGN(requests[i].size));
}

void attach_shared_memory() {
  if (previous_startup_hook) previous_startup_hook();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  for (int i = 0; i < request_count; ++i) {
    bool found = false;
    void* memory = ShmemInitStruct(requests[i].name, requests[i].size, &found);
    if (!found) requests[i].init(memory);
    *requests[i].where = memory;
  }
  LWLockRelease(AddinShmemInitLock);
}

}  // namespace

void request_shared_struct(const char* name, std::size_t size, void (*init)(void* memory), void** where) {
  if (request_count == 0) {
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = request_shared_memory;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = attach_shared_memory;
  }
  if (request_count < kMaxRequests) requests[request_count++] = {name, size, init, where};
}

}  // namespace orch::pg
