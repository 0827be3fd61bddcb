#include "core/otlp/otlp_exporter.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using nlohmann::json;

namespace orch::otlp {
namespace {

TEST(OtlpExporter, RequestHoldsTheSpansUnderOneResource) {
  std::string span1 = R"({"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"run \"x\""})";
  std::string span2 = R"({"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b7","name":"n"})";
  json request = json::parse(export_request({span1, span2}, "orders"));
  const json& resource_spans = request.at("resourceSpans");
  ASSERT_EQ(resource_spans.size(), 1u);
  EXPECT_EQ(resource_spans[0]["resource"]["attributes"],
            json::parse(R"([{"key": "service.name", "value": {"stringValue": "pg_orchestration"}},
                            {"key": "db.name", "value": {"stringValue": "orders"}}])"));
  const json& scope_spans = resource_spans[0].at("scopeSpans");
  ASSERT_EQ(scope_spans.size(), 1u);
  EXPECT_EQ(scope_spans[0]["scope"]["name"], "pg_orchestration");
  EXPECT_EQ(scope_spans[0]["spans"], json::array({json::parse(span1), json::parse(span2)}));
}

TEST(OtlpExporter, NoAnswerIsAProblemNotAnException) {
  // Nothing listens on port 1 of this machine: refused at once.
  Delivery delivery = send("http://127.0.0.1:1/v1/traces", export_request({}, "db"), 2000);
  EXPECT_FALSE(delivery.accepted);
  EXPECT_NE(delivery.problem.find("no answer from http://127.0.0.1:1/v1/traces"), std::string::npos) << delivery.problem;
}

}  // namespace
}  // namespace orch::otlp
