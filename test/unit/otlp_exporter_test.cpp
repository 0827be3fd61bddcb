#include "core/otlp/otlp_exporter.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

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

// A collector that accepts connections (the kernel does, from its listen backlog) and
// never answers.
class SilentCollector {
 public:
  SilentCollector() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), size) != 0 || listen(fd_, 8) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size) != 0)
      throw std::runtime_error("no listening socket");
    port_ = ntohs(address.sin_port);
  }
  ~SilentCollector() { close(fd_); }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces"; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

using Clock = std::chrono::steady_clock;

TEST(ExportThread, OfferReturnsAtOnceWhileTheCollectorNeverAnswers) {
  SilentCollector collector;
  ExportThread exporter;
  auto before = Clock::now();
  ASSERT_TRUE(exporter.offer(Batch{{1, 2}, collector.endpoint(), export_request({}, "db"), 800}));
  EXPECT_LT(Clock::now() - before, std::chrono::milliseconds(200)) << "offer waited for the collector";
  EXPECT_TRUE(exporter.busy());
  EXPECT_FALSE(exporter.offer(Batch{{3}, collector.endpoint(), "{}", 800})) << "one batch at a time";
  EXPECT_FALSE(exporter.take_result());
  // The timeout ends the try; the outcome comes back with the batch's ids.
  ASSERT_TRUE(readable(exporter.wake_fd(), 5000));
  std::optional<Sent> sent = exporter.take_result();
  ASSERT_TRUE(sent);
  EXPECT_FALSE(sent->delivery.accepted);
  EXPECT_NE(sent->delivery.problem.find("no answer from " + collector.endpoint()), std::string::npos)
      << sent->delivery.problem;
  EXPECT_EQ(sent->ids, (std::vector<std::int64_t>{1, 2}));
  EXPECT_FALSE(exporter.busy());
  EXPECT_FALSE(readable(exporter.wake_fd(), 0));
}

TEST(ExportThread, DestroyingItAbortsARequestUnderWayAndJoins) {
  SilentCollector collector;
  auto exporter = std::make_unique<ExportThread>();
  ASSERT_TRUE(exporter->offer(Batch{{1}, collector.endpoint(), export_request({}, "db"), 60000}));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto before = Clock::now();
  exporter.reset();
  EXPECT_LT(Clock::now() - before, std::chrono::seconds(3)) << "the 60 s timeout was waited for";
}

}  // namespace
}  // namespace orch::otlp
