#include "core/common/failure_backoff.hpp"

#include <gtest/gtest.h>

using orch::FailureBackoff;

TEST(FailureBackoff, DoublesFromTheFirstWaitUpToTheCeiling) {
  FailureBackoff backoff;
  EXPECT_EQ(backoff.failed(1000), 10);
  EXPECT_EQ(backoff.failed(1000), 20);
  EXPECT_EQ(backoff.failed(1000), 40);
  EXPECT_EQ(backoff.failed(1000), 80);
  EXPECT_EQ(backoff.failed(1000), 160);
  EXPECT_EQ(backoff.failed(1000), 320);
  EXPECT_EQ(backoff.failed(1000), 640);
  EXPECT_EQ(backoff.failed(1000), 1000);
  EXPECT_EQ(backoff.failed(1000), 1000);
}

TEST(FailureBackoff, ASuccessStartsAgainFromTheFirstWait) {
  FailureBackoff backoff;
  for (int i = 0; i < 5; ++i) backoff.failed(1000);
  backoff.succeeded();
  EXPECT_EQ(backoff.failed(1000), 10);
  EXPECT_EQ(backoff.failed(1000), 20);
}

TEST(FailureBackoff, NeverWaitsLongerThanTheCeilingOfTheMoment) {
  FailureBackoff backoff;
  EXPECT_EQ(backoff.failed(5), 5);  // a poll interval shorter than the first wait
  EXPECT_EQ(backoff.failed(5), 5);
  // The largest poll interval (an hour), failing for days: no overflow, no wait past it.
  long hour = 3600L * 1000;
  for (int i = 0; i < 10000; ++i) EXPECT_LE(backoff.failed(hour), hour);
  EXPECT_EQ(backoff.failed(hour), hour);
  // The ceiling lowered meanwhile (a reload): the next wait follows it.
  EXPECT_EQ(backoff.failed(1000), 1000);
}
