// Depth limits on everything that recurses over user JSON: each routine works just at the
// limit and refuses just past it with a clear message; at-limit work completes on a thread
// with a 1 MiB stack (run under ASan in the unit build, where frames are largest), and
// inputs 10,000 and 100,000 levels deep give errors, not crashes.
#include "core/common/json_limits.hpp"

#include <pthread.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif
#include <sys/mman.h>

#include <cstring>
#include <exception>
#include <functional>

#include <gtest/gtest.h>

#include "core/common/secret_mask.hpp"
#include "core/common/user_error.hpp"
#include "core/schema/json_schema.hpp"
#include "core/template/condition.hpp"
#include "core/template/template.hpp"

using nlohmann::json;
using orch::kMaxJsonDepth;
using orch::UserError;
using orch::schema::Schema;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// "[[[...]]]": `levels` arrays, with `leaf` in the innermost (nothing if empty).
std::string nested_arrays(std::size_t levels, const std::string& leaf = "") {
  return std::string(levels, '[') + leaf + std::string(levels, ']');
}

// {"not": {"not": ... {} }}: a schema document `levels` objects deep.
std::string nested_nots(std::size_t levels) {
  std::string text;
  for (std::size_t i = 1; i < levels; ++i) text += "{\"not\":";
  text += "{}";
  text += std::string(levels - 1, '}');
  return text;
}

// nlohmann's parser does not recurse, so tests build deep values with it (unlimited).
json deep(std::size_t levels, const std::string& leaf = "") { return json::parse(nested_arrays(levels, leaf)); }

// {"context": {name: value, ...}}, the values moved in (an initializer list would copy
// them, and copying a deep value recurses).
void put(json&) {}
template <typename... Rest>
void put(json& object, const char* name, json value, Rest&&... rest) {
  object[name] = std::move(value);
  put(object, std::forward<Rest>(rest)...);
}
template <typename... Args>
json context(Args&&... args) {
  json scope = json::object();
  put(scope["context"] = json::object(), std::forward<Args>(args)...);
  return scope;
}

std::string zeros(std::size_t n) {
  std::string pointer;
  for (std::size_t i = 0; i < n; ++i) pointer += "/0";
  return pointer;
}

// Runs `fn` on a thread whose stack is `size` bytes with an inaccessible guard page
// below it (pthread_attr_setstack gives none of its own), and returns how much of the
// stack it used: the stack is filled with a pattern first, and afterwards the lowest byte
// that differs marks the deepest frame. An overflow hits the guard: SIGSEGV, which ASan
// reports as a stack overflow, failing the test run. Rethrows what `fn` throws.
constexpr std::size_t kStack = 1 << 20;
constexpr std::size_t kGuard = 64 << 10;
constexpr unsigned char kPaint = 0xA5;

__attribute__((no_sanitize_address)) std::size_t untouched_bytes(const unsigned char* low, std::size_t size) {
  std::size_t n = 0;
  while (n < size && low[n] == kPaint) ++n;
  return n;
}

std::size_t stack_used(const std::function<void()>& fn, std::size_t size = kStack) {
  void* mapping = mmap(nullptr, kGuard + size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) throw std::runtime_error("mmap failed");
  auto* base = static_cast<unsigned char*>(mapping);
  mprotect(base, kGuard, PROT_NONE);
  unsigned char* low = base + kGuard;
  std::memset(low, kPaint, size);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, low, size);
  struct Job {
    const std::function<void()>* fn;
    std::exception_ptr error;
  } job{&fn, nullptr};
  pthread_t thread;
  int started = pthread_create(
      &thread, &attr,
      [](void* arg) -> void* {
        auto* job = static_cast<Job*>(arg);
        try {
          (*job->fn)();
        } catch (...) {
          job->error = std::current_exception();
        }
        return nullptr;
      },
      &job);
  pthread_attr_destroy(&attr);
  if (started != 0) throw std::runtime_error("pthread_create failed");
  pthread_join(thread, nullptr);
  std::size_t used = size - untouched_bytes(low, size);
#ifdef __SANITIZE_ADDRESS__
  // Redzones of the thread's frames may still be marked in ASan's shadow memory; a later
  // mapping at the same address must not inherit them.
  ASAN_UNPOISON_MEMORY_REGION(low, size);
#endif
  munmap(mapping, kGuard + size);
  if (job.error) std::rethrow_exception(job.error);
  return used;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// parse_json_limited

TEST(JsonLimits, ParsesJustAtTheLimitAndRefusesJustPastIt) {
  EXPECT_EQ(orch::json_depth(orch::parse_json_limited(nested_arrays(kMaxJsonDepth))), kMaxJsonDepth);
  EXPECT_EQ(error_of([] { orch::parse_json_limited(nested_arrays(kMaxJsonDepth + 1)); }),
            "JSON nested deeper than 512 levels (at byte 513)");
  // Objects count like arrays; the byte is where the level too many opens.
  std::string text = "{\"a\": " + nested_arrays(kMaxJsonDepth) + "}";
  EXPECT_EQ(error_of([&] { orch::parse_json_limited(text); }), "JSON nested deeper than 512 levels (at byte 518)");
  for (std::size_t levels : {10000u, 100000u})
    EXPECT_EQ(error_of([&] { orch::parse_json_limited(nested_arrays(levels)); }),
              "JSON nested deeper than 512 levels (at byte 513)");
  try {
    orch::parse_json_limited(nested_arrays(100000));
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.sqlstate(), orch::sqlstate::program_limit_exceeded);
  }
  // A smaller limit for callers that want one.
  EXPECT_NO_THROW(orch::parse_json_limited("[[1]]", 2));
  EXPECT_EQ(error_of([] { orch::parse_json_limited("[[[1]]]", 2); }), "JSON nested deeper than 2 levels (at byte 3)");
}

TEST(JsonLimits, BracketsInsideStringsDoNotCount) {
  std::string brackets(5000, '[');
  json parsed = orch::parse_json_limited("[\"" + brackets + "\", \"\\\"[[[\\\\\", {\"k[{\": 1}]");
  EXPECT_EQ(parsed[0], brackets);
  EXPECT_EQ(parsed[1], "\"[[[\\");
  EXPECT_EQ(parsed[2]["k[{"], 1);
  // An escaped quote does not end the string: the brackets after it are still inside.
  EXPECT_NO_THROW(orch::parse_json_limited("\"\\\"" + brackets + "\""));
}

TEST(JsonLimits, ParseErrorsAreUserErrorsWithNlohmannsMessage) {
  try {
    orch::parse_json_limited("{\"a\": }");
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "invalid JSON: parse error at line 1, column 7: syntax error while parsing value - "
              "unexpected '}'; expected '[', '{', or a literal");
    EXPECT_STREQ(e.sqlstate(), orch::sqlstate::invalid_text_representation);
  }
  EXPECT_EQ(error_of([] { orch::parse_json_limited(""); }).substr(0, 48),
            "invalid JSON: parse error at line 1, column 1: s");
  EXPECT_EQ(error_of([] { orch::parse_json_limited("[1] x"); }).substr(0, 48),
            "invalid JSON: parse error at line 1, column 5: s");
}

// A number no double can hold is valid JSON (jsonb stores it as numeric) but nlohmann
// refuses it with out_of_range: an error of the text's, not an exception that escapes
// (found by the fuzz target: it aborted the process).
TEST(JsonLimits, NumbersBeyondADoubleAreUserErrors) {
  for (const char* text : {"1e400", "{\"a\": [-1e400]}", "277777777777E7777777"}) {
    try {
      orch::parse_json_limited(text);
      ADD_FAILURE() << "no error for " << text;
    } catch (const UserError& e) {
      EXPECT_EQ(std::string(e.what()), "a JSON number is too large");
      EXPECT_STREQ(e.sqlstate(), orch::sqlstate::program_limit_exceeded);
    }
  }
}

TEST(JsonLimits, FindTooDeepNamesThePlace) {
  EXPECT_FALSE(orch::find_too_deep(deep(kMaxJsonDepth), kMaxJsonDepth));
  EXPECT_EQ(orch::find_too_deep(deep(kMaxJsonDepth + 1), kMaxJsonDepth), zeros(kMaxJsonDepth));
  EXPECT_EQ(orch::find_too_deep(json::parse(R"({"a": [1, {"b/~": [[]]}]})"), 3), "/a/1/b~1~0");
  EXPECT_EQ(orch::find_too_deep(json::parse(R"([[]])"), 0), "");
  EXPECT_FALSE(orch::find_too_deep(json(5), 0));
  EXPECT_EQ(orch::json_depth(json::parse(R"({"a": [1, {"b": []}], "c": {}})")), 4u);
  EXPECT_EQ(orch::json_depth(deep(100000), 10), 10u);  // stops counting at stop_at
}

TEST(JsonLimits, ShowPointerEscapesAndShortens) {
  EXPECT_EQ(orch::show_pointer(std::string("/a\0b", 4)), "/a\\u0000b");
  std::string shown = orch::show_pointer(zeros(1000));
  EXPECT_EQ(shown, zeros(49) + "/..." + zeros(40));
  EXPECT_EQ(orch::show_pointer(zeros(100)), zeros(100));  // 200 bytes: shown whole
}

// ---------------------------------------------------------------------------------------
// check_storable_in_jsonb

TEST(JsonLimits, NulCharactersAreNamedByTheirPointer) {
  EXPECT_NO_THROW(orch::check_storable_in_jsonb(json::parse(R"({"a": ["x", {"b": "y"}], "c": 1})")));
  EXPECT_EQ(error_of([] { orch::check_storable_in_jsonb(json::parse(R"({"a":"\u0000"})")); }),
            "string at /a contains the character U+0000, which PostgreSQL's jsonb cannot store");
  EXPECT_EQ(error_of([] { orch::check_storable_in_jsonb(json::parse(R"({"a": [1, {"b~/": "x\u0000y"}]})")); }),
            "string at /a/1/b~0~1 contains the character U+0000, which PostgreSQL's jsonb cannot store");
  EXPECT_EQ(error_of([] { orch::check_storable_in_jsonb(json::parse(R"("\u0000")")); }),
            "string at the root contains the character U+0000, which PostgreSQL's jsonb cannot store");
  EXPECT_EQ(error_of([] { orch::check_storable_in_jsonb(json::parse(R"({"x": {"k\u0000": 1}})")); }),
            "key \"k\\u0000\" in the object at /x contains the character U+0000, which PostgreSQL's jsonb "
            "cannot store");
  // The first in document order (nlohmann orders keys).
  EXPECT_EQ(error_of([] { orch::check_storable_in_jsonb(json::parse(R"({"b": "\u0000", "a": ["\u0000"]})")); }),
            "string at /a/0 contains the character U+0000, which PostgreSQL's jsonb cannot store");
  try {
    orch::check_storable_in_jsonb(json::parse(R"(["\u0000"])"));
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.sqlstate(), orch::sqlstate::untranslatable_character);
  }
  // Deep documents are walked without recursion.
  EXPECT_EQ(error_of([] { orch::check_storable_in_jsonb(deep(100000, R"("\u0000")")); }).substr(0, 20),
            "string at /0/0/0/0/0");
}

// ---------------------------------------------------------------------------------------
// JSON Schema: compiling and validating

TEST(JsonLimits, SchemaDocumentsAtTheLimitCompileAndDeeperOnesAreRefused) {
  auto schema = Schema::compile(json::parse(nested_nots(kMaxJsonDepth)));
  EXPECT_FALSE(schema->is_valid(1));  // 511 nots of {}: an odd number, so nothing is valid
  EXPECT_TRUE(Schema::compile(json::parse(nested_nots(kMaxJsonDepth - 1)))->is_valid(1));
  std::string nots;
  for (std::size_t i = 0; i < kMaxJsonDepth; ++i) nots += "/not";
  EXPECT_EQ(error_of([] { Schema::compile(json::parse(nested_nots(kMaxJsonDepth + 1))); }),
            "invalid JSON Schema at " + orch::show_pointer(nots) + ": nested deeper than 512 levels");
  // Depth anywhere counts, also inside a "const" (copied and compared when validating).
  json with_const = json::object();
  with_const["const"] = deep(kMaxJsonDepth);
  EXPECT_EQ(error_of([&] { Schema::compile(with_const); }),
            "invalid JSON Schema at " + orch::show_pointer("/const" + zeros(kMaxJsonDepth - 1)) +
                ": nested deeper than 512 levels");
  for (std::size_t levels : {10000u, 100000u})
    EXPECT_NE(error_of([&] { Schema::compile(json::parse(nested_nots(levels))); }).find("nested deeper than 512 levels"),
              std::string::npos);
}

TEST(JsonLimits, LongRefChainsCompileWithoutRecursionAndValidationIsBounded) {
  // d1 -> d0, d2 -> d1, ...: each $ref points at a definition compiled already, so
  // compiling never nests, but applying the last one walks the whole chain.
  auto chain = [](std::size_t length) {
    json defs = json::object();
    defs["d0"] = json{{"type", "integer"}};
    for (std::size_t i = 1; i < length; ++i) defs["d" + std::to_string(i)] = {{"$ref", "#/$defs/d" + std::to_string(i - 1)}};
    return json{{"$defs", defs}, {"$ref", "#/$defs/d" + std::to_string(length - 1)}};
  };
  EXPECT_TRUE(Schema::compile(chain(orch::schema::kMaxValidationDepth))->is_valid(1));
  EXPECT_FALSE(Schema::compile(chain(orch::schema::kMaxValidationDepth))->is_valid("x"));
  EXPECT_EQ(error_of([&] { Schema::compile(chain(orch::schema::kMaxValidationDepth + 1))->validate(1); }),
            "JSON Schema validation nested deeper than 1024 levels (at the root)");
  EXPECT_EQ(error_of([&] { Schema::compile(chain(10000))->validate(1); }),
            "JSON Schema validation nested deeper than 1024 levels (at the root)");
  // A loop in a long chain is still found (now without recursion).
  json looped = chain(10000);
  looped["$defs"]["d0"] = {{"$ref", "#/$defs/d9999"}};
  EXPECT_NE(error_of([&] { Schema::compile(looped); }).find("$ref loop"), std::string::npos);
}

TEST(JsonLimits, InstancesAtTheLimitValidateAndDeeperOnesAreRefused) {
  auto tree = Schema::compile(json::parse(R"({"type": "array", "items": {"$ref": "#"}})"));
  EXPECT_TRUE(tree->is_valid(deep(kMaxJsonDepth)));
  EXPECT_EQ(tree->validate(deep(kMaxJsonDepth, "1")).size(), 1u);
  EXPECT_EQ(orch::schema::describe(tree->validate(deep(3, "1"))), "/0/0/0: does not match the root schema: 1 is not of type \"array\"");
  EXPECT_EQ(error_of([&] { tree->validate(deep(kMaxJsonDepth + 1)); }),
            "JSON Schema validation: the instance is nested deeper than 512 levels (at " +
                orch::show_pointer(zeros(kMaxJsonDepth)) + ")");
  for (std::size_t levels : {10000u, 100000u}) {
    EXPECT_NE(error_of([&] { tree->validate(deep(levels)); }).find("the instance is nested deeper than 512 levels"),
              std::string::npos);
    // Keywords that do not descend read a deep instance without recursing: messages show
    // a bounded preview, uniqueItems compares without recursion.
    json twice = json::array();
    twice.push_back(deep(levels));  // moved in: copying would recurse
    twice.push_back(deep(levels));
    EXPECT_EQ(orch::schema::describe(Schema::compile(json::parse(R"({"type": "string"})"))->validate(twice)),
              "(root): a long array is not of type \"string\"");
    EXPECT_EQ(orch::schema::describe(Schema::compile(json::parse(R"({"uniqueItems": true})"))->validate(twice)),
              "(root): items 0 and 1 are equal, but uniqueItems is set");
  }
}

// ---------------------------------------------------------------------------------------
// Templates and conditions

TEST(JsonLimits, TemplatesRenderAtTheLimitAndRefuseDeeperResults) {
  using orch::templating::render;
  json scope = context("deep", deep(kMaxJsonDepth - 1), "deeper", deep(kMaxJsonDepth));
  // Input at the limit: 512 arrays around a string.
  EXPECT_EQ(orch::json_depth(render(deep(kMaxJsonDepth, "\"x\""), scope)), kMaxJsonDepth);
  EXPECT_EQ(error_of([&] { render(deep(kMaxJsonDepth + 1, "\"x\""), scope); }),
            "template input is nested more than 512 levels deep");
  // A placeholder's value plus the input around it: 1 + 511 is fine, 1 + 512 is not.
  EXPECT_EQ(orch::json_depth(render(json::array({"{{ context.deep }}"}), scope)), kMaxJsonDepth);
  EXPECT_EQ(error_of([&] { render(json::array({"{{ context.deeper }}"}), scope); }),
            "placeholder {{ context.deeper }} cannot be rendered: the result would be nested deeper than 512 levels");
  EXPECT_EQ(orch::json_depth(render("{{ context.deeper }}", scope)), kMaxJsonDepth);
  // Printed inside a longer string: the value itself must be within the limit.
  EXPECT_EQ(render("v={{ context.deeper }}", scope).get<std::string>().size(), 2 + 2 * kMaxJsonDepth);
  json deepest = context("v", deep(100000));
  EXPECT_NE(error_of([&] { render("v={{ context.v }}", deepest); }).find("cannot be rendered"), std::string::npos);
  EXPECT_NE(error_of([&] { render("{{ context.v }}", deepest); }).find("cannot be rendered"), std::string::npos);
  EXPECT_EQ(error_of([&] { render(deep(100000, "\"x\""), scope); }), "template input is nested more than 512 levels deep");
}

TEST(JsonLimits, ConditionsCompareWithinTheLimit) {
  using orch::templating::evaluate_condition;
  json scope = context("a", deep(kMaxJsonDepth), "b", deep(kMaxJsonDepth), "c", deep(100000), "d", deep(100000));
  EXPECT_TRUE(evaluate_condition("{{ context.a }} == {{ context.b }}", scope));
  EXPECT_FALSE(evaluate_condition("{{ context.a }} != {{ context.b }}", scope));
  // One side within the limit bounds the comparison.
  EXPECT_FALSE(evaluate_condition("{{ context.a }} == {{ context.c }}", scope));
  EXPECT_EQ(error_of([&] { evaluate_condition("{{ context.c }} == {{ context.d }}", scope); }),
            "\"when\" condition \"{{ context.c }} == {{ context.d }}\" compares values nested deeper than 512 levels");
  std::string literal = nested_arrays(kMaxJsonDepth + 1);
  EXPECT_EQ(error_of([&] { evaluate_condition("{{ context.a }} == " + literal, scope); }),
            "invalid \"when\" condition \"{{ context.a }} == " + literal +
                "\": JSON nested deeper than 512 levels (at byte 513)");
  EXPECT_TRUE(evaluate_condition("{{ context.a }} == " + nested_arrays(kMaxJsonDepth), scope));
}

// ---------------------------------------------------------------------------------------
// On a 1 MiB stack: everything that recurses, at the limit, and hostile depths.

TEST(JsonLimits, AtTheLimitEverythingFitsInOneMebibyteOfStack) {
  // Built here, on the big stack: the measured work is what callers do with such values.
  std::string text = nested_arrays(kMaxJsonDepth, "\"x\"");
  json at_limit = deep(kMaxJsonDepth, "\"x\"");
  json schema_doc = {{"type", "array"}, {"items", {{"$ref", "#"}}}};
  // 2,000 definitions, each an allOf of a $ref to the next, below unevaluatedProperties:
  // every step gathers annotations, on the same value.
  json gathering_chain = {{"unevaluatedProperties", false}, {"$ref", "#/$defs/d0"}, {"$defs", json::object()}};
  for (int i = 0; i < 2000; ++i)
    gathering_chain["$defs"]["d" + std::to_string(i)] = {{"allOf", {{{"$ref", "#/$defs/d" + std::to_string(i + 1)}}}}};
  gathering_chain["$defs"]["d2000"] = true;
  json general_doc = json::parse(R"({"$id": "https://example.com/t", "$dynamicAnchor": "n", "type": "array",
                                     "prefixItems": [{"$dynamicRef": "#n"}], "unevaluatedItems": false})");
  json const_schema = {{"const", deep(kMaxJsonDepth - 1)}};
  json scope = context("v", deep(kMaxJsonDepth - 1), "w", deep(kMaxJsonDepth));
  struct Case {
    const char* what;
    std::function<void()> fn;
  };
  std::vector<Case> cases = {
      {"parse_json_limited", [&] { EXPECT_EQ(orch::parse_json_limited(text), at_limit); }},
      {"dump", [&] { EXPECT_EQ(at_limit.dump().size(), text.size()); }},
      {"copy and ==", [&] { json copy = at_limit; EXPECT_TRUE(copy == at_limit); }},
      {"Schema::compile (nested)", [&] { Schema::compile(json::parse(nested_nots(kMaxJsonDepth))); }},
      {"Schema::compile (const)", [&] { EXPECT_TRUE(Schema::compile(const_schema)->is_valid(deep(kMaxJsonDepth - 1))); }},
      {"Schema::validate (1024 levels)", [&] { EXPECT_EQ(Schema::compile(schema_doc)->validate(deep(kMaxJsonDepth)).size(), 0u); }},
      {"Schema::validate (violations)", [&] { EXPECT_EQ(Schema::compile(schema_doc)->validate(at_limit).size(), 1u); }},
      // The general path (annotations gathered for unevaluatedItems, a dynamic scope kept)
      // counts its steps twice: it stops, with an error, before the stack runs out.
      {"Schema::validate (unevaluated)", [&] { EXPECT_THROW(Schema::compile(general_doc)->validate(deep(kMaxJsonDepth)), UserError); }},
      {"Schema::validate (unevaluated, 300)", [&] { EXPECT_TRUE(Schema::compile(general_doc)->validate(deep(300)).empty()); }},
      {"Schema::validate (gathering chain)", [&] { EXPECT_THROW(Schema::compile(gathering_chain)->validate(json::object()), UserError); }},
      {"render", [&] { EXPECT_EQ(orch::templating::render(at_limit, scope), at_limit); }},
      {"render (placeholder)", [&] { orch::templating::render(json::array({"{{ context.v }}", "v={{ context.w }}"}), scope); }},
      {"evaluate_condition", [&] { EXPECT_TRUE(orch::templating::evaluate_condition("{{ context.w }} == {{ context.w }}", scope)); }},
      {"check_storable_in_jsonb", [&] { orch::check_storable_in_jsonb(at_limit); }},
      {"mask_secrets", [&] { json copy = at_limit; orch::mask_secrets(copy, {"secret"}); }},
  };
  std::size_t most = 0;
  for (const Case& c : cases) {
    std::size_t used = stack_used(c.fn);
    std::fprintf(stderr, "  %-32s %7zu bytes of stack\n", c.what, used);
    most = std::max(most, used);
  }
  // Not a timing or size assertion that could flake: a case that needed more than the
  // stack has would have crashed on the guard page. This records the headroom.
  RecordProperty("most_stack_bytes", static_cast<int>(most));
}

TEST(JsonLimits, HostileDepthsAreErrorsOnOneMebibyteOfStack) {
  for (std::size_t levels : {10000u, 100000u}) {
    std::string text = nested_arrays(levels, "\"x\"");
    json hostile = json::parse(text);  // nlohmann parses without recursion
    json schema_doc = json::parse(nested_nots(levels));
    json scope = context("v", json::parse(text));
    std::vector<std::function<void()>> cases = {
        [&] { orch::parse_json_limited(text); },
        [&] { Schema::compile(schema_doc); },
        [&] { Schema::compile(json::parse(R"({"items": {"$ref": "#"}})"))->validate(hostile); },
        [&] { orch::templating::render(hostile, scope); },
        [&] { orch::templating::render("{{ context.v }}", scope); },
        [&] { orch::templating::evaluate_condition("{{ context.v }} == {{ context.v }}", scope); },
    };
    for (std::size_t i = 0; i < cases.size(); ++i)
      EXPECT_THROW(stack_used(cases[i]), UserError) << "case " << i << " at " << levels << " levels";
    // These walk any depth without recursion, so they simply succeed.
    EXPECT_NO_THROW(stack_used([&] { orch::check_storable_in_jsonb(hostile); }));
    EXPECT_NO_THROW(stack_used([&] { EXPECT_EQ(orch::find_too_deep(hostile, kMaxJsonDepth), zeros(kMaxJsonDepth)); }));
    EXPECT_NO_THROW(stack_used([&] { json copy = json::parse(text); orch::mask_secrets(copy, {"xxxx"}); }));
    EXPECT_NO_THROW(stack_used([&] { EXPECT_TRUE(orch::templating::placeholders(json::array()).empty()); }));
  }
}
