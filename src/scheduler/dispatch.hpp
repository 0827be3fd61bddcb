// One pass of the scheduler or of a RULE worker inside one transaction: (the scheduler)
// expire approvals, then claim runnable nodes in level order and move each one on (run
// it, skip it, or fail it), until nothing is runnable or the transaction's budget is spent.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "executors/container_executor.hpp"
#include "scheduler/rule_pool.hpp"

namespace orch::scheduler {

struct PassResult {
  int nodes = 0;                // nodes moved on
  bool budget_spent = false;    // more work may be runnable right now
  long next_due_ms = -1;        // when a retry or an expiry is due (-1: nothing scheduled)
  int project = 0;              // a RULE worker's: the project whose nodes it claimed (0: none)
  // Container attempts to start once this transaction has committed (their nodes are
  // RUNNING in it): never before, or a crash could leave a container no row knows about.
  std::vector<executors::ContainerJob> launches;
};

// What a pass claims: the scheduler takes container nodes (and approvals, skips and
// failures of every node it claims) and leaves RULE nodes to the RULE workers, which
// take RULE nodes of one project per transaction; with rule_workers = 0 the scheduler
// takes all.
enum class Claiming { all, containers, rule_nodes };

// A RULE worker's claim found its project taken up to the cap by others meanwhile: the
// transaction must be rolled back (nothing ran yet) and the pass tried again.
struct ProjectTaken : std::runtime_error {
  ProjectTaken() : std::runtime_error("the project was taken by other RULE workers") {}
};

// Runs inside a transaction with SPI connected (pg::run_transaction). Each claim_nodes
// call is a claim round, numbered in agent_runs.scheduler_round so a test can see which
// nodes were dispatched together; `round` counts them where the database's workers share
// no counter. `slot` is the database's (for the RULE workers' shared memory); `finished`
// are RUNNING container nodes whose container has finished (their result waits for a
// later pass): they do not count against the concurrency limits.
PassResult run_pass(std::int64_t& round, const std::string& database, int slot, Claiming claiming,
                    const std::vector<std::int64_t>& finished = {});

// Records the attempts the scheduler stopped (rule_pool.hpp) as timed out. Those whose
// run or agent someone else holds locked wait for a later pass; returns the entries whose
// attempt was recorded (to forget once committed).
std::vector<int> record_stopped(const std::vector<rule_pool::StoppedAttempt>& stopped);

// Records finished container attempts (in the caller's transaction), checking outputs
// against their capability's output schema first. Attempts whose run is locked by another
// transaction are not waited for: they are returned, to be recorded by a later pass;
// `finished` keeps those recorded.
std::vector<executors::FinishedJob> record_containers(std::vector<executors::FinishedJob>& finished);

// What follows a pass, told by the worker's loop once it committed (pass_succeeded) or
// rolled back (pass_failed). After a pass that failed, the next records each claim round
// in a subtransaction and, if the claim round cannot be written, fails the attempts whose
// results cannot be stored (see Attempts in dispatch.cpp); after a pass that succeeded,
// claim rounds are written directly. And the next pass comes soon: pass_failed returns how
// long to wait for it (FailureBackoff, up to the poll interval).
void pass_succeeded();
long pass_failed();

// The crash-loop breaker, at a worker's start and before its first claim: counts a crash
// for every node a process that died left in a marker of this database
// (crash_marker.hpp), failing a node at its second; each in a transaction of its own,
// committed before any work (if the node brings a process down again, the count must
// already be there). Throws if one cannot be noted now (try again before claiming); false,
// noting nothing, while this database has another version's objects (extension_version.hpp).
bool note_crashes_left();

// Crash recovery, once at start: every RUNNING container node is collected (adopted)
// and every container of this database that no node is waiting for is removed.
std::vector<executors::ContainerJob> containers_to_adopt(const std::string& database);

// The in-flight nodes whose run was cancelled (their containers are to be killed).
std::vector<std::int64_t> cancelled_in_flight(const std::vector<std::int64_t>& in_flight);

}  // namespace orch::scheduler
