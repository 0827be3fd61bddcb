// Waking the scheduler at commit, without polling and without pointers in shared memory.
//
// Each scheduler worker publishes its database and its PGPROC number in a small shared
// memory array. A backend that creates work calls request_wake_at_commit(); when its
// transaction commits (and only then), a transaction callback sets the latch of the
// scheduler of its database. On rollback nothing happens: no work, no wake-up.
#pragma once

namespace orch::scheduler {

// From _PG_init while preloading: asks for the shared memory and installs its hooks.
void install_shared_memory_hooks();

// The worker announces itself in its slot (and leaves it when it exits).
void register_scheduler(int slot);

// Called by the SQL API (orchestration.wake_scheduler()).
void request_wake_at_commit();

}  // namespace orch::scheduler
