#include "core/workflow/workflow_graph.hpp"

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"

using orch::UserError;
using namespace orch::workflow;

namespace {

std::string error_of(const std::vector<GraphNode>& nodes) {
  try {
    check_workflow_graph(nodes);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::string hint_of(const std::vector<GraphNode>& nodes) {
  try {
    check_workflow_graph(nodes);
  } catch (const UserError& e) {
    return e.hint();
  }
  return "";
}

}  // namespace

TEST(WorkflowGraph, ManyDiamondsInSeriesAreLinear) {
  // 2^200 paths from the first node to the last: walking paths would never finish. (Their
  // levels are computed in SQL: test/integration/definitions.sh, sql/workflows.sql.)
  std::vector<GraphNode> nodes{{"top0", {}, {}}};
  for (int i = 0; i < 200; ++i) {
    std::string top = "top" + std::to_string(i), next = "top" + std::to_string(i + 1);
    nodes.push_back({"l" + std::to_string(i), {top}, {}});
    nodes.push_back({"r" + std::to_string(i), {top}, {}});
    nodes.push_back({next, {"l" + std::to_string(i), "r" + std::to_string(i)}, {"top0"}});
  }
  EXPECT_EQ(error_of(nodes), "");
}

TEST(WorkflowGraph, NamesTheCycleInRunningOrder) {
  // start -> a, and a -> b -> c -> a: reported from a, the first node on it by id.
  EXPECT_EQ(error_of({{"start", {}, {}}, {"a", {"start", "c"}, {}}, {"b", {"a"}, {}}, {"c", {"b"}, {}}}),
            "invalid workflow spec: the nodes a -> b -> c -> a form a cycle (each runs after the one before it)");
  EXPECT_EQ(hint_of({{"x", {"y"}, {}}, {"y", {"x"}, {}}}), "A workflow is a DAG: remove one of these depends_on entries.");
  EXPECT_EQ(error_of({{"x", {"y"}, {}}, {"y", {"x"}, {}}}),
            "invalid workflow spec: the nodes x -> y -> x form a cycle (each runs after the one before it)");
  EXPECT_EQ(error_of({{"root", {}, {}}, {"self", {"root", "self"}, {}}}),
            "invalid workflow spec: the nodes self -> self form a cycle (each runs after the one before it)");
}

TEST(WorkflowGraph, ANodeBehindACycleLeadsToIt) {
  // "a" waits for the cycle c <-> d but is not on it; the message shows only the cycle.
  EXPECT_EQ(error_of({{"a", {"c"}, {}}, {"c", {"d"}, {}}, {"d", {"c"}, {}}}),
            "invalid workflow spec: the nodes c -> d -> c form a cycle (each runs after the one before it)");
}

TEST(WorkflowGraph, ReferencesMustBeUpstream) {
  // Transitive ancestors are upstream.
  EXPECT_EQ(error_of({{"a", {}, {}}, {"b", {"a"}, {}}, {"c", {"b"}, {"a", "b"}}}), "");
  // A sibling is not.
  EXPECT_EQ(error_of({{"a", {}, {}}, {"b", {"a"}, {}}, {"c", {"a"}, {"b"}}}),
            "invalid workflow spec: node \"c\" uses {{ nodes.b.output }}, but \"b\" is not upstream of \"c\"");
  EXPECT_EQ(hint_of({{"a", {}, {}}, {"b", {"a"}, {}}, {"c", {"a"}, {"b"}}}),
            "Add \"b\" to the depends_on of \"c\" (or of a node it depends on), so that its output exists when "
            "\"c\" runs.");
  // Nor is a node downstream, nor the node itself.
  EXPECT_EQ(error_of({{"a", {}, {"b"}}, {"b", {"a"}, {}}}),
            "invalid workflow spec: node \"a\" uses {{ nodes.b.output }}, but \"b\" is not upstream of \"a\"");
  EXPECT_EQ(error_of({{"a", {}, {"a"}}}),
            "invalid workflow spec: node \"a\" uses {{ nodes.a.output }}, but \"a\" is not upstream of \"a\"");
}

TEST(WorkflowGraph, TheFirstOffenceByNodeThenReferenceIsReported) {
  EXPECT_EQ(error_of({{"z", {}, {"y"}}, {"y", {}, {"x", "w"}}, {"x", {}, {}}, {"w", {}, {}}}),
            "invalid workflow spec: node \"y\" uses {{ nodes.w.output }}, but \"w\" is not upstream of \"y\"");
}
