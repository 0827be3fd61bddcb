#include "core/nats/oversized_event.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using nlohmann::json;
using orch::nats::fits;
using orch::nats::reduced_event;

TEST(OversizedEvent, FitsLeavesRoomForHeaders) {
  EXPECT_TRUE(fits(1000, 0));  // max_payload not known yet
  EXPECT_TRUE(fits(1024, 2048));
  EXPECT_FALSE(fits(1025, 2048));
  EXPECT_FALSE(fits(10 << 20, 1 << 20));
}

TEST(OversizedEvent, KeepsTheEnvelopeAndPointsToTheRow) {
  json event = {{"specversion", "1.0"},
                {"id", "e-1"},
                {"source", "/orchestration/db/2"},
                {"type", "orchestration.node.succeeded"},
                {"subject", "run/7/node/a"},
                {"time", "2026-12-02T04:00:00Z"},
                {"datacontenttype", "application/json"},
                {"data",
                 {{"project_id", 2}, {"run_id", 7}, {"node_key", "a"}, {"status", "SUCCESS"}, {"attempt", 1},
                  {"output", std::string(5 << 20, 'x')}}}};
  std::string payload = event.dump();
  json reduced = json::parse(reduced_event(payload, 42));
  EXPECT_EQ(reduced["id"], "e-1");
  EXPECT_EQ(reduced["type"], "orchestration.node.succeeded");
  EXPECT_EQ(reduced["subject"], "run/7/node/a");
  EXPECT_EQ(reduced["dataref"], "orchestration.events/42");
  EXPECT_EQ(reduced["data"]["run_id"], 7);
  EXPECT_EQ(reduced["data"]["node_key"], "a");
  EXPECT_EQ(reduced["data"]["status"], "SUCCESS");
  EXPECT_EQ(reduced["data"]["truncated"], true);
  EXPECT_EQ(reduced["data"]["size_bytes"], payload.size());
  EXPECT_FALSE(reduced["data"].contains("output"));
  EXPECT_LT(reduced.dump().size(), 1024u);
}

TEST(OversizedEvent, AnythingElseStillGivesASmallValidDocument) {
  for (std::string payload : {std::string("not json"), std::string("[1,2]"), std::string(100000, '['),
                              json{{"id", std::string(100000, 'i')}, {"data", "text"}}.dump()}) {
    json reduced = json::parse(reduced_event(payload, 9));
    EXPECT_EQ(reduced["dataref"], "orchestration.events/9");
    EXPECT_EQ(reduced["data"]["truncated"], true);
    EXPECT_FALSE(reduced.contains("id"));  // an id too long to keep is left out
    EXPECT_LT(reduced.dump().size(), 1024u);
  }
}
