#include "core/common/run_lock_order.hpp"

#include <gtest/gtest.h>

using orch::RunLockOrder;
using Runs = std::vector<std::int64_t>;

TEST(RunLockOrder, AFirstRoundOfSeveralRunsTakesThemAllInIdOrder) {
  RunLockOrder order;
  RunLockOrder::Round round = order.plan({9, 3, 9, 5});  // claim order: B before A
  EXPECT_EQ(round.keep, (std::vector<bool>{true, true, true, true}));
  EXPECT_EQ(round.lock, (Runs{3, 5, 9}));
  EXPECT_FALSE(round.left_any());
}

TEST(RunLockOrder, OneNewRunWaitsAloneWithoutAStatement) {
  RunLockOrder order;
  EXPECT_TRUE(order.plan({7, 7, 7}).lock.empty());  // a wide round, a chain's first claim
  order.moved({7, 7, 7}, false);
  RunLockOrder::Round handed = order.plan({7});      // its hand-off: a run it holds
  EXPECT_TRUE(handed.lock.empty());
  EXPECT_FALSE(handed.left_any());
}

TEST(RunLockOrder, NeverWaitsForARunBelowOneItMayHold) {
  RunLockOrder order;
  order.moved({10}, false);
  // Claiming again: run 7 is below run 10, which it holds: its nodes wait for the next
  // transaction. Run 12 is above: taken (alone, so no statement). Run 10 is its own.
  RunLockOrder::Round round = order.plan({7, 12, 10, 7});
  EXPECT_EQ(round.keep, (std::vector<bool>{false, true, true, false}));
  EXPECT_TRUE(round.left_any());
  EXPECT_TRUE(round.lock.empty());
  RunLockOrder::Round two_new = order.plan({14, 12});
  EXPECT_EQ(two_new.lock, (Runs{12, 14}));
}

TEST(RunLockOrder, ACarefulRoundHoldsNothingForSure) {
  RunLockOrder order;
  order.moved({4, 8}, true);  // written in subtransactions: one undone let its run go
  RunLockOrder::Round round = order.plan({4, 8, 9});
  EXPECT_EQ(round.keep, (std::vector<bool>{false, false, true}));
  EXPECT_TRUE(round.lock.empty());  // only run 9 is taken, alone
}
