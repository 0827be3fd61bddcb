#include "core/template/condition.hpp"

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"

using nlohmann::json;
using orch::UserError;
using namespace orch::templating;

namespace {

json scope() {
  return json::parse(R"({"context": {"env": "prod", "n": 3, "empty": [], "zero": 0, "f": 1.0},
                         "nodes": {"triage": {"output": {"notify": false, "count": 2}}},
                         "run": {"id": 1}, "workflow": {"name": "w"}})");
}

bool eval(const json& when) { return evaluate_condition(when, scope()); }

std::string error_of(const json& when) {
  try {
    check_condition(when);
    evaluate_condition(when, scope());
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Condition, BooleansAndNull) {
  EXPECT_TRUE(eval(true));
  EXPECT_FALSE(eval(false));
  EXPECT_TRUE(eval(nullptr));  // no condition: the node runs
}

TEST(Condition, Truthiness) {
  EXPECT_FALSE(eval("{{ nodes.triage.output.notify }}"));
  EXPECT_TRUE(eval("{{ nodes.triage.output.count }}"));
  EXPECT_FALSE(eval("{{ context.empty }}"));
  EXPECT_FALSE(eval("{{ context.zero }}"));
  EXPECT_TRUE(eval("{{ context.env }}"));
  EXPECT_FALSE(truthy(json("")));
  EXPECT_FALSE(truthy(json::object()));
  EXPECT_FALSE(truthy(nullptr));
}

TEST(Condition, Comparisons) {
  EXPECT_TRUE(eval(R"({{ context.env }} == "prod")"));
  EXPECT_FALSE(eval(R"({{ context.env }} != "prod")"));
  EXPECT_TRUE(eval("{{ context.n }} > 2"));
  EXPECT_FALSE(eval("{{ context.n }} < 3"));
  EXPECT_TRUE(eval("{{ context.n }} <= 3"));
  EXPECT_TRUE(eval("{{ context.n }}>=3"));
  EXPECT_TRUE(eval("{{ context.f }} == 1"));  // 1.0 == 1
  EXPECT_TRUE(eval("{{ nodes.triage.output.count }} < {{ context.n }}"));
  EXPECT_TRUE(eval(R"("a" < "b")"));
  EXPECT_TRUE(eval("{{ nodes.triage.output.notify }} == false"));
}

TEST(Condition, Errors) {
  EXPECT_EQ(error_of(42), "a \"when\" condition must be a string or a boolean, not number");
  EXPECT_EQ(error_of("{{ context.env }} = \"prod\""),
            "invalid \"when\" condition \"{{ context.env }} = \"prod\"\": expected one of == != < "
            "<= > >= after the first operand");
  EXPECT_EQ(error_of("{{ context.env }} == prod"),
            "invalid \"when\" condition \"{{ context.env }} == prod\": \"prod\" is neither a "
            "placeholder nor a JSON value (quote strings: \"prod\")");
  EXPECT_EQ(error_of("{{ context.n }} >"),
            "invalid \"when\" condition \"{{ context.n }} >\": the operand after > is missing");
  EXPECT_EQ(error_of("{{ context.n }} > 1 2"),
            "invalid \"when\" condition \"{{ context.n }} > 1 2\": unexpected text after the comparison");
  EXPECT_EQ(error_of("   "), "invalid \"when\" condition \"   \": it is empty");
  EXPECT_EQ(error_of("{{ context.n "), "invalid \"when\" condition \"{{ context.n \": unclosed {{");
  EXPECT_EQ(error_of("{{ context.env }} > 1"),
            "\"when\" condition \"{{ context.env }} > 1\" compares string > number; only two "
            "numbers or two strings can be ordered");
  EXPECT_EQ(error_of("{{ context.missing }}"),
            "placeholder {{ context.missing }} does not resolve: context has no key \"missing\"");
}

TEST(Condition, ReferencedNodes) {
  EXPECT_EQ(condition_nodes("{{ nodes.a.output.x }} < {{ nodes.b.output }}"),
            (std::set<std::string>{"a", "b"}));
  EXPECT_TRUE(condition_nodes(true).empty());
}
