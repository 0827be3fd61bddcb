// The crash-loop breaker's memory: the node a worker (the scheduler or a RULE worker) is
// working on right now, kept in a small file of the data directory, one per worker
// (pg_orchestration/scheduler-<database oid>.node, rule-<database oid>-<index>.node).
//
// Whatever kills the scheduler while it works on a node (a signal, a bug in a library,
// a stack overflow not yet guarded) rolls its transaction back, so the database cannot
// remember it; the file can. An orderly exit (proc_exit, FATAL included) clears it; a
// crash leaves it (a process the postmaster ends because another crashed clears it), the
// next process of the same worker reads it at start and counts a crash for that node
// (orchestration.note_crash), and a node counted twice is failed instead of being run a
// third time. Writing it costs two pwrite calls per node, no fsync: it must survive the
// process, not the machine (after a machine crash the loop, if any, marks it again).
#pragma once

#include <cstdint>
#include <string>

namespace orch::scheduler::crash_marker {

// Opens (creating) the marker file of this worker (`name`: scheduler-<database oid>, ...)
// and returns the node a previous process left in it (0: none). Call once, at worker
// start, before any work.
std::int64_t open(const std::string& name);

// Marks `node` as the one being worked on (0: none).
void working_on(std::int64_t node);

}  // namespace orch::scheduler::crash_marker
