// The lock order across runs (extension/70_runs.sql) as a RULE worker's pass keeps it: it
// waits for a run's row only in run id order, so that two workers never each hold one run
// and wait for the other's. A claim round takes the runs of its nodes it does not hold yet
// in id order, all before its first write when they are several (lock_runs). It never
// waits for a run at or below one it may already hold: the nodes of such a run stay
// PENDING, for its next transaction. (A pass claims once, and its later rounds are the
// hand-offs of runs it has written, unless the runs of a hand-off were reserved meanwhile
// and it claims again.)
#pragma once

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

namespace orch {

class RunLockOrder {
 public:
  struct Round {
    std::vector<bool> keep;           // per node of the round: it may be moved now
    std::vector<std::int64_t> lock;   // runs to take in id order before the first write
                                      // (when several are new; one new run waits alone)
    bool left_any() const { return std::find(keep.begin(), keep.end(), false) != keep.end(); }
  };

  // node_runs: the run of each node a round claimed, in claim order.
  Round plan(const std::vector<std::int64_t>& node_runs) const {
    Round round;
    std::set<std::int64_t> taking;
    for (std::int64_t run : node_runs) {
      bool held = held_.count(run) != 0;
      bool may_wait = held || run > highest_;
      round.keep.push_back(may_wait);
      if (may_wait && !held) taking.insert(run);
    }
    if (taking.size() > 1) round.lock.assign(taking.begin(), taking.end());
    return round;
  }

  // After the round: the runs of the nodes it moved are held (each node's write took its
  // run), unless it wrote carefully (in subtransactions: one undone lets its run go), when
  // they only may be (so a careful pass, which follows a failed one, ends after a round).
  void moved(const std::vector<std::int64_t>& runs, bool careful) {
    for (std::int64_t run : runs) {
      highest_ = std::max(highest_, run);
      if (!careful) held_.insert(run);
    }
  }

 private:
  std::set<std::int64_t> held_;  // written (or locked) by this transaction: no wait
  std::int64_t highest_ = 0;     // the highest run it may hold
};

}  // namespace orch
