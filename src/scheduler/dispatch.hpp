// One pass of the scheduler inside one transaction: expire approvals, then claim runnable
// nodes in level order and move each one on (run it, skip it, or fail it), until nothing
// is runnable or the transaction's budget is spent.
#pragma once

#include <cstdint>

namespace orch::scheduler {

struct PassResult {
  int nodes = 0;                // nodes moved on
  bool budget_spent = false;    // more work may be runnable right now
  long next_due_ms = -1;        // when a retry or an expiry is due (-1: nothing scheduled)
};

// Runs inside a transaction with SPI connected (pg::run_transaction). `round` numbers the
// claims, so a test can see which nodes were dispatched together.
PassResult run_pass(std::int64_t& round);

}  // namespace orch::scheduler
