#include "core/common/array_literal.hpp"

#include <gtest/gtest.h>

namespace orch {
namespace {

TEST(ArrayLiteral, EmptyArray) { EXPECT_EQ(ArrayLiteral().str(), "{}"); }

TEST(ArrayLiteral, Integers) {
  EXPECT_EQ(array_literal({4, -17, 9007199254740993}), "{4,-17,9007199254740993}");
}

TEST(ArrayLiteral, TextIsQuotedAndEscaped) {
  ArrayLiteral literal;
  literal.add(std::string(R"({"say": "a \"quoted\" word", "path": "C:\\x"})"))
      .add(std::string(""))
      .add(std::string("NULL"))
      .add(std::nullopt)
      .add(std::string("a, b} {c"));
  EXPECT_EQ(literal.size(), 5u);
  EXPECT_EQ(literal.str(),
            R"({"{\"say\": \"a \\\"quoted\\\" word\", \"path\": \"C:\\\\x\"}","","NULL",NULL,"a, b} {c"})");
}

}  // namespace
}  // namespace orch
