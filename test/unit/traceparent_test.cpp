#include "core/otlp/traceparent.hpp"

#include <gtest/gtest.h>

using orch::otlp::child_traceparent;
using orch::otlp::valid_traceparent;

namespace {

std::array<unsigned char, 24> bytes(unsigned char first) {
  std::array<unsigned char, 24> random{};
  for (std::size_t i = 0; i < random.size(); ++i) random[i] = static_cast<unsigned char>(first + i);
  return random;
}

const char* kParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

}  // namespace

TEST(Traceparent, ValidOnlyInTheW3CForm) {
  EXPECT_TRUE(valid_traceparent(kParent));
  EXPECT_TRUE(valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"));
  EXPECT_FALSE(valid_traceparent(""));
  EXPECT_FALSE(valid_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));   // version
  EXPECT_FALSE(valid_traceparent("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"));   // upper case
  EXPECT_FALSE(valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 "));  // trailing
  EXPECT_FALSE(valid_traceparent("00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01"));
  EXPECT_FALSE(valid_traceparent("00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-0101"));   // short trace id
  EXPECT_FALSE(valid_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01"));   // zero trace id
  EXPECT_FALSE(valid_traceparent("00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01"));
}

TEST(Traceparent, AChildKeepsItsParentsTraceWithANewSpan) {
  std::string child = child_traceparent(kParent, bytes(0x10));
  EXPECT_EQ(child, "00-0af7651916cd43dd8448eb211c80319c-2021222324252627-01");
  EXPECT_TRUE(valid_traceparent(child));
  EXPECT_NE(child_traceparent(kParent, bytes(0x30)), child);
}

TEST(Traceparent, WithoutAValidParentANewTraceStarts) {
  for (const char* parent : {"", "garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01"}) {
    std::string child = child_traceparent(parent, bytes(0x00));
    EXPECT_EQ(child, "00-000102030405060708090a0b0c0d0e0f-1011121314151617-01") << parent;
    EXPECT_TRUE(valid_traceparent(child));
  }
}

TEST(Traceparent, AllZeroIdsAreNeverMade) {
  std::array<unsigned char, 24> zeros{};
  std::string child = child_traceparent("", zeros);
  EXPECT_EQ(child, "00-00000000000000000000000000000001-0000000000000001-01");
  EXPECT_TRUE(valid_traceparent(child));
}
