#include "core/template/template.hpp"

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"

using nlohmann::json;
using orch::UserError;
using namespace orch::templating;

namespace {

json scope() {
  return json::parse(R"({
    "context": {"user": {"email": "a@example.com", "tags": ["x", "y"]}, "count": 3,
                "weird key.with dot": "ok", "flag": true, "nothing": null},
    "nodes": {"scan": {"output": {"findings": [{"severity": "high"}], "total": 1}}},
    "run": {"id": 42, "trigger": "manual"},
    "workflow": {"name": "nightly", "id": 7, "version": 2}
  })");
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Template, WholeStringPlaceholderKeepsTheType) {
  EXPECT_EQ(render_string("{{ context.count }}", scope()), 3);
  EXPECT_EQ(render_string("{{context.flag}}", scope()), true);
  EXPECT_EQ(render_string("{{ context.nothing }}", scope()), nullptr);
  EXPECT_EQ(render_string("{{ context.user.tags }}", scope()), json({"x", "y"}));
  EXPECT_EQ(render_string("{{ nodes.scan.output.findings[0] }}", scope()),
            json::parse(R"({"severity": "high"})"));
  EXPECT_EQ(render_string("{{ run.id }}", scope()), 42);
}

TEST(Template, PlaceholderInsideTextRendersAsText) {
  EXPECT_EQ(render_string("to {{ context.user.email }} (run {{ run.id }})", scope()),
            "to a@example.com (run 42)");
  EXPECT_EQ(render_string("tags={{ context.user.tags }}", scope()), "tags=[\"x\",\"y\"]");
  EXPECT_EQ(render_string("n={{ context.nothing }} f={{ context.flag }}", scope()), "n=null f=true");
  EXPECT_EQ(render_string(" {{ context.count }}", scope()), " 3");  // not the whole string
}

TEST(Template, PathsWithIndexesAndQuotedKeys) {
  EXPECT_EQ(render_string("{{ context.user.tags[1] }}", scope()), "y");
  EXPECT_EQ(render_string("{{ context[\"weird key.with dot\"] }}", scope()), "ok");
  EXPECT_EQ(render_string("{{ context['weird key.with dot'] }}", scope()), "ok");
  EXPECT_EQ(render_string("{{ nodes.scan.output.findings[0].severity }}", scope()), "high");
}

TEST(Template, RendersNestedStructuresAndLeavesKeysAlone) {
  json inputs = json::parse(R"({"{{ run.id }}": ["{{ run.id }}", {"to": "{{ context.user.email }}"}], "n": 5})");
  json out = render(inputs, scope());
  EXPECT_EQ(out, json::parse(R"({"{{ run.id }}": [42, {"to": "a@example.com"}], "n": 5})"));
}

TEST(Template, EscapedBracesAreLiteral) {
  EXPECT_EQ(render_string(R"(Jinja: \{{ name }} for {{ context.user.email }})", scope()),
            "Jinja: {{ name }} for a@example.com");
  EXPECT_TRUE(placeholders(json(R"(\{{ not a placeholder }})")).empty());
}

TEST(Template, UnresolvedReferencesSayWhy) {
  EXPECT_EQ(error_of([] { render_string("{{ context.user.phone }}", scope()); }),
            "placeholder {{ context.user.phone }} does not resolve: context.user has no key \"phone\"");
  EXPECT_EQ(error_of([] { render_string("{{ context.user.tags[5] }}", scope()); }),
            "placeholder {{ context.user.tags[5] }} does not resolve: context.user.tags has 2 "
            "elements, so [5] is out of range");
  EXPECT_EQ(error_of([] { render_string("{{ context.count.x }}", scope()); }),
            "placeholder {{ context.count.x }} does not resolve: context.count is number, not an "
            "object, so it has no key \"x\"");
  EXPECT_EQ(error_of([] { render_string("{{ context.user[0] }}", scope()); }),
            "placeholder {{ context.user[0] }} does not resolve: context.user is object, not an "
            "array, so it has no [0]");
  EXPECT_EQ(error_of([] { render_string("{{ nodes.notify.output }}", scope()); }),
            "placeholder {{ nodes.notify.output }} does not resolve: no output of node \"notify\" "
            "is available");
}

TEST(Template, MalformedTemplates) {
  EXPECT_EQ(error_of([] { placeholders(json("hello {{ context.x")); }),
            "unclosed {{ in template \"{{ context.x\"");
  EXPECT_EQ(error_of([] { placeholders(json("{{ }}")); }),
            "invalid placeholder {{  }}: it is empty");
  EXPECT_EQ(error_of([] { placeholders(json("{{ context..x }}")); }),
            "invalid placeholder {{ context..x }}: empty path segment");
  EXPECT_EQ(error_of([] { placeholders(json("{{ context.x. }}")); }),
            "invalid placeholder {{ context.x. }}: it ends with '.'");
  EXPECT_EQ(error_of([] { placeholders(json("{{ context.x[ }}")); }),
            "invalid placeholder {{ context.x[ }}: unclosed '['");
  EXPECT_EQ(error_of([] { placeholders(json("{{ context.x[a] }}")); }),
            "invalid placeholder {{ context.x[a] }}: [a] is not an array index or a quoted key");
  EXPECT_EQ(error_of([] { placeholders(json("{{ context x }}")); }),
            "invalid placeholder {{ context x }}: unexpected character ' '");
  EXPECT_EQ(error_of([] { placeholders(json("{{ ctx.x }}")); }),
            "invalid placeholder {{ ctx.x }}: unknown root \"ctx\"; use context, nodes, run or workflow");
  EXPECT_EQ(error_of([] { placeholders(json("{{ nodes.scan.result }}")); }),
            "invalid placeholder {{ nodes.scan.result }}: a node reference reads its output: "
            "nodes.<id>.output");
  EXPECT_EQ(error_of([] { placeholders(json("{{ run.owner }}")); }),
            "invalid placeholder {{ run.owner }}: run has no field \"owner\" (it has id, "
            "project_id, started_by, traceparent, trigger)");
  EXPECT_EQ(error_of([] { placeholders(json("{{ workflow.name.x }}")); }),
            "invalid placeholder {{ workflow.name.x }}: workflow has fields only, such as workflow.name");
}

TEST(Template, ReferencedNodes) {
  json inputs = json::parse(R"({"a": "{{ nodes.b.output.x }} and {{ nodes.c.output }}",
                                "list": ["{{ nodes.b.output }}", "{{ context.y }}"]})");
  EXPECT_EQ(referenced_nodes(inputs), (std::set<std::string>{"b", "c"}));
  EXPECT_TRUE(referenced_nodes(json::parse(R"({"plain": "text", "n": 1})")).empty());
}

TEST(Template, HugeInputsRenderInOnePass) {
  // 1 MiB of text with 10,000 placeholders.
  std::string text;
  for (int i = 0; i < 10000; ++i) text += std::string(100, 'x') + "{{ run.id }}";
  json out = render_string(text, scope());
  EXPECT_EQ(out.get<std::string>().size(), 10000u * 102u);
  // A 5 MB string without placeholders is returned as it is.
  std::string plain(5 * 1024 * 1024, 'y');
  EXPECT_EQ(render_string(plain, scope()).get<std::string>().size(), plain.size());
}

TEST(Template, DeepNestingIsRefusedNotOverflowed) {
  json deep = "leaf";
  for (int i = 0; i < 2000; ++i) deep = json::array({deep});
  EXPECT_EQ(error_of([&] { render(deep, scope()); }),
            "template input is nested more than 512 levels deep");
  EXPECT_EQ(error_of([&] { placeholders(deep); }),
            "template input is nested more than 512 levels deep");
}
