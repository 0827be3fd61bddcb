// One pass of the scheduler inside one transaction: expire approvals, then claim runnable
// nodes in level order and move each one on (run it, skip it, or fail it), until nothing
// is runnable or the transaction's budget is spent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "executors/container_executor.hpp"

namespace orch::scheduler {

struct PassResult {
  int nodes = 0;                // nodes moved on
  bool budget_spent = false;    // more work may be runnable right now
  long next_due_ms = -1;        // when a retry or an expiry is due (-1: nothing scheduled)
  // Container attempts to start once this transaction has committed (their nodes are
  // RUNNING in it): never before, or a crash could leave a container no row knows about.
  std::vector<executors::ContainerJob> launches;
};

// Runs inside a transaction with SPI connected (pg::run_transaction). `round` numbers the
// claims, so a test can see which nodes were dispatched together.
PassResult run_pass(std::int64_t& round, const std::string& database);

// Records finished container attempts (in the caller's transaction), checking outputs
// against their capability's output schema first. Attempts whose run is locked by another
// transaction are not waited for: they are returned, to be recorded by a later pass;
// `finished` keeps those recorded.
std::vector<executors::FinishedJob> record_containers(std::vector<executors::FinishedJob>& finished);

// After a pass that failed, the next records each round in a subtransaction, and each
// attempt alone if the round cannot be written (see Attempts in dispatch.cpp); after a
// pass that succeeded, rounds are written directly again.
void record_carefully(bool careful);

// The crash-loop breaker, at start: the previous scheduler died while working on `node`
// (crash_marker.hpp); counts it, and fails the node at the second time.
void note_crash(std::int64_t node);

// Crash recovery, once at start: every RUNNING container node is collected (adopted)
// and every container of this database that no node is waiting for is removed.
std::vector<executors::ContainerJob> containers_to_adopt(const std::string& database);

// The in-flight nodes whose run was cancelled (their containers are to be killed).
std::vector<std::int64_t> cancelled_in_flight(const std::vector<std::int64_t>& in_flight);

}  // namespace orch::scheduler
