// The crash-loop breaker's memory: the node a worker (the scheduler or a RULE worker) is
// working on right now, kept in a small file of the data directory, one per worker
// (pg_orchestration/scheduler-<database oid>.node, rule-<database oid>-<index>.node).
//
// Whatever kills the scheduler while it works on a node (a signal, a bug in a library,
// a stack overflow not yet guarded) rolls its transaction back, so the database cannot
// remember it; the file can. An orderly exit (proc_exit, FATAL included) clears it; a
// crash leaves it (a process the postmaster ends because another crashed clears it), and
// after the restart the first worker to look counts a crash for that node
// (orchestration.note_crash), and a node counted twice is failed instead of being run a
// third time. Writing it costs two pwrite calls per node, no fsync: it must survive the
// process, not the machine (after a machine crash the loop, if any, marks it again). Not
// a mapped page, which would save the calls: a store into it raises SIGBUS, and the
// postmaster restarts the whole cluster, wherever the file system finds no room for the
// page (a full disk, or any write-back on a copy-on-write file system); pwrite fails
// with ENOSPC instead, which only disables the breaker.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace orch::scheduler::crash_marker {

// Opens (creating) the marker file of this worker (`name`: scheduler-<database oid>,
// rule-<database oid>-<index>). Its records carry `generation`, the shared memory's (a
// new one after every crash restart), so that a record left by a process of an earlier
// generation is known for a leftover. Call once, at worker start, before any work.
void open(const std::string& name, std::uint64_t generation);

// Calls note(node) for every node a process of an earlier generation left in a marker of
// this database, whichever worker's (the scheduler's, any RULE worker's), and clears it;
// each leftover is noted by one worker only (the files are locked while it is). Every
// worker calls it before its first claim, so no worker runs a node again before its
// crash is counted. If note throws, the marker stays and the exception goes on.
void note_leftovers(unsigned int database_oid, const std::function<void(std::int64_t)>& note);

// Marks `node` as the one being worked on (0: none).
void working_on(std::int64_t node);

}  // namespace orch::scheduler::crash_marker
