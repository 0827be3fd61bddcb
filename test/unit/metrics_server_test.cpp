#include "core/http/metrics_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

using namespace orch::http;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(ListenAddress, Forms) {
  ListenAddress a = parse_listen_address("9187");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9187);
  a = parse_listen_address("10.0.0.5:9100");
  EXPECT_EQ(a.host, "10.0.0.5");
  EXPECT_EQ(a.port, 9100);
  a = parse_listen_address("[::1]:9187");
  EXPECT_EQ(a.host, "::1");
  a = parse_listen_address("*:9187");
  EXPECT_EQ(a.host, "");  // every interface
  a = parse_listen_address("localhost:80");
  EXPECT_EQ(a.host, "localhost");
}

TEST(ListenAddress, Refused) {
  for (const char* bad : {"", ":9187", "host:", "host:0", "host:65536", "host:12ab", "::1:9187", "9187x", "h:-1",
                          "[:80", "]:80", "a b:80", "[*]:80", "[]:80", "[::1:80", "h/x:80", "[g::1]:80"})
    EXPECT_THROW(parse_listen_address(bad), std::invalid_argument) << bad;
}

TEST(RequestHead, Complete) {
  RequestHead head;
  EXPECT_EQ(parse_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", 8192, head),
            HeadStatus::complete);
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/metrics");
  EXPECT_EQ(head.version, "HTTP/1.1");
  EXPECT_EQ(parse_request_head("GET /metrics HTTP/1.0\n\n", 8192, head), HeadStatus::complete);
  // Mixed line endings end the head too.
  EXPECT_EQ(parse_request_head("GET /metrics HTTP/1.1\nHost: x\n\r\n", 8192, head), HeadStatus::complete);
  EXPECT_EQ(parse_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\n\n", 8192, head), HeadStatus::complete);
  EXPECT_EQ(head.target, "/metrics");
}

TEST(RequestHead, IncompleteUntilTheEmptyLine) {
  RequestHead head;
  EXPECT_EQ(parse_request_head("", 8192, head), HeadStatus::incomplete);
  EXPECT_EQ(parse_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\n", 8192, head), HeadStatus::incomplete);
}

TEST(RequestHead, TooLargeWithoutWaitingForTheEnd) {
  RequestHead head;
  EXPECT_EQ(parse_request_head("GET /" + std::string(9000, 'a'), 8192, head), HeadStatus::too_large);
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n", 8192, head),
            HeadStatus::too_large);
}

TEST(RequestHead, Malformed) {
  RequestHead head;
  for (const std::string& bad : {std::string("GET /metrics\r\n\r\n"), std::string("GET  /metrics HTTP/1.1\r\n\r\n"),
                          std::string("get /metrics HTTP/1.1\r\n\r\n"), std::string("GET metrics HTTP/1.1\r\n\r\n"),
                          std::string("GET /metrics HTTP/2.0\r\n\r\n"), std::string("GET /metrics HTTP/1.1 x\r\n\r\n"),
                          std::string("GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n"),
                          std::string("GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n"),
                          std::string("GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n"),
                          std::string("GET /met\0rics HTTP/1.1\r\n\r\n", 26), std::string("\x16\x03\x01\x02\x00", 5)})
    EXPECT_EQ(parse_request_head(bad, 8192, head), HeadStatus::malformed) << bad;
  // A control byte is refused as it arrives, before the head is complete.
  EXPECT_EQ(parse_request_head(std::string("GET /\x01", 6), 8192, head), HeadStatus::malformed);
}

TEST(Answer, OnlyGetMetrics) {
  int calls = 0;
  auto metrics = [&] {
    ++calls;
    Response r;
    r.body = "m 1\n";
    return r;
  };
  EXPECT_EQ(answer({"GET", "/metrics", "HTTP/1.1"}, metrics).body, "m 1\n");
  EXPECT_EQ(answer({"GET", "/metrics?x=1", "HTTP/1.1"}, metrics).status, 200);
  EXPECT_EQ(answer({"GET", "/", "HTTP/1.1"}, metrics).status, 404);
  EXPECT_EQ(answer({"GET", "/metrics/", "HTTP/1.1"}, metrics).status, 404);
  EXPECT_EQ(answer({"POST", "/metrics", "HTTP/1.1"}, metrics).status, 405);
  EXPECT_EQ(answer({"HEAD", "/metrics", "HTTP/1.1"}, metrics).status, 405);
  EXPECT_EQ(calls, 2);
  EXPECT_NE(serialize(answer({"PUT", "/metrics", "HTTP/1.1"}, metrics)).find("Allow: GET\r\n"), std::string::npos);
}

namespace {

// A client on a non-blocking socket, driven in the test's thread between polls.
struct Client {
  int fd = -1;
  std::string received;
  bool closed = false;

  explicit Client(int port) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);  // EINPROGRESS
  }
  ~Client() { hang_up(); }
  void hang_up() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  void send_text(const std::string& text) {
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, 1000);
    ASSERT_EQ(send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
  }
  void read_available() {
    char buffer[65536];
    for (;;) {
      ssize_t n = recv(fd, buffer, sizeof buffer, 0);
      if (n > 0) {
        received.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed = true;
      return;
    }
  }
};

Response fixed_metrics() {
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = "orchestration_runs{project=\"1\",status=\"SUCCESS\"} 3\n";
  return r;
}

// Polls the server (and reads for the clients) until `done` or `limit`.
template <typename Done>
bool pump(MetricsServer& server, Done done, std::chrono::milliseconds limit = 3000ms,
          const std::function<Response()>& metrics = fixed_metrics) {
  Clock::time_point end = Clock::now() + limit;
  while (Clock::now() < end) {
    server.poll(metrics);
    if (done()) return true;
    pollfd p{server.wake_fd(), POLLIN, 0};
    ::poll(&p, 1, 5);
  }
  return false;
}

ListenAddress any_port() { return ListenAddress{"127.0.0.1", 0}; }

}  // namespace

TEST(MetricsServer, AnswersAScrape) {
  MetricsServer server(any_port());
  ASSERT_GT(server.port(), 0);
  Client c(server.port());
  c.send_text("GET /metrics HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Prometheus/2.42.0\r\n\r\n");
  ASSERT_TRUE(pump(server, [&] { c.read_available(); return c.closed; }));
  EXPECT_EQ(c.received.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << c.received;
  EXPECT_NE(c.received.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(c.received.find("\r\n\r\norchestration_runs{project=\"1\",status=\"SUCCESS\"} 3\n"), std::string::npos);
  // The server half-closed after the answer and lets go when the client closes.
  EXPECT_EQ(server.connections(), 1u);
  c.hang_up();
  EXPECT_TRUE(pump(server, [&] { return server.connections() == 0; }));
}

TEST(MetricsServer, MalformedAndOtherRequestsGetAnErrorNotTheMetrics) {
  MetricsServer server(any_port());
  int calls = 0;
  auto counted = [&] { ++calls; return fixed_metrics(); };
  struct Case { std::string request; std::string status; };
  for (const Case& k : {Case{"GARBAGE\r\n\r\n", "400"}, Case{"GET /metrics HTTP/9\r\n\r\n", "400"},
                        Case{std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11), "400"},
                        Case{"GET / HTTP/1.1\r\n\r\n", "404"}, Case{"DELETE /metrics HTTP/1.1\r\n\r\n", "405"},
                        Case{"GET /" + std::string(20000, 'x'), "431"}}) {
    Client c(server.port());
    c.send_text(k.request);
    ASSERT_TRUE(pump(server, [&] { c.read_available(); return c.closed; }, 3000ms, counted)) << k.request;
    EXPECT_EQ(c.received.substr(0, 12), "HTTP/1.1 " + k.status) << k.request;
  }
  EXPECT_EQ(calls, 0);
}

TEST(MetricsServer, AFailingReadIsA500ThatSaysNothingOfTheError) {
  MetricsServer server(any_port());
  Client c(server.port());
  c.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  auto failing = []() -> Response { throw std::runtime_error("password=hunter2 in some error"); };
  ASSERT_TRUE(pump(server, [&] { c.read_available(); return c.closed; }, 3000ms, failing));
  EXPECT_EQ(c.received.substr(0, 12), "HTTP/1.1 500");
  EXPECT_EQ(c.received.find("hunter2"), std::string::npos);
}

TEST(MetricsServer, ASlowSenderIsCutOffAtItsHeadDeadlineAndHoldsNobodyUp) {
  Limits limits;
  limits.head_timeout = 300ms;
  MetricsServer server(any_port(), limits);
  Client slow(server.port());
  slow.send_text("GET /met");  // and nothing more
  ASSERT_TRUE(pump(server, [&] { return server.connections() == 1; }));
  // Meanwhile a scrape is answered.
  Client quick(server.port());
  quick.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(pump(server, [&] { quick.read_available(); return quick.closed; }, 1000ms));
  EXPECT_EQ(quick.received.substr(0, 12), "HTTP/1.1 200");
  Clock::time_point start = Clock::now();
  ASSERT_TRUE(pump(server, [&] { slow.read_available(); return slow.closed; }));
  EXPECT_LT(Clock::now() - start, 2000ms);
  EXPECT_EQ(slow.received.substr(0, 12), "HTTP/1.1 408");
  quick.hang_up();
  EXPECT_TRUE(pump(server, [&] { return server.connections() == 0; }));
}

TEST(MetricsServer, AReaderThatNeverReadsIsCutOffAndDoesNotBlockThePoll) {
  // What a blocked poll would show: another scrape answered only once the stuck reader has
  // been cut off at its deadline. So the property checked is the order of the two, with a
  // deadline long enough (2 s) that a loaded machine cannot reverse it; no duration is
  // asserted.
  Limits limits;
  limits.deadline = 2000ms;
  MetricsServer server(any_port(), limits);
  bool first = true;
  auto huge_then_small = [&first] {
    Response r;
    // The first answer is far more than the socket buffers hold; the others are small.
    r.body = first ? std::string(32 << 20, 'x') : std::string("up 1\n");
    first = false;
    return r;
  };
  Client stuck(server.port());
  stuck.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(pump(server, [&] { return !first; }, 3000ms, huge_then_small));  // its answer is being sent
  Client quick(server.port());
  quick.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(pump(server, [&] { quick.read_available(); return quick.closed; }, 5000ms, huge_then_small));
  EXPECT_EQ(quick.received.substr(0, 12), "HTTP/1.1 200");
  // Both still held: the stuck reader, and the scrape half-closed until its client hangs up.
  EXPECT_EQ(server.connections(), 2u) << "the stuck reader was still connected when the other scrape was answered";
  quick.hang_up();
  EXPECT_TRUE(pump(server, [&] { return server.connections() == 0; }, 5000ms, huge_then_small))
      << "and it is cut off at its deadline";
}

TEST(MetricsServer, IdleConnectionsCannotKeepAScraperOut) {
  Limits limits;
  limits.max_connections = 2;
  MetricsServer server(any_port(), limits);
  Client idle1(server.port());
  ASSERT_TRUE(pump(server, [&] { return server.connections() == 1; }));
  Client idle2(server.port());
  ASSERT_TRUE(pump(server, [&] { return server.connections() == 2; }));
  // Full of connections that sent nothing: a scraper pushes out the oldest (408).
  Client scraper(server.port());
  scraper.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(pump(server, [&] { scraper.read_available(); return scraper.closed; }));
  EXPECT_EQ(scraper.received.substr(0, 12), "HTTP/1.1 200");
  ASSERT_TRUE(pump(server, [&] { idle1.read_available(); return idle1.closed; }));
  EXPECT_EQ(idle1.received.substr(0, 12), "HTTP/1.1 408");
  idle2.read_available();
  EXPECT_FALSE(idle2.closed);
}

TEST(MetricsServer, WhenEveryConnectionIsBeingAnsweredANewOneIsToldBusy) {
  Limits limits;
  limits.max_connections = 2;
  MetricsServer server(any_port(), limits);
  auto huge = [] {
    Response r;
    r.body = std::string(32 << 20, 'x');  // more than the socket buffers hold: they stay in writing
    return r;
  };
  Client a(server.port()), b(server.port());
  a.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  b.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(pump(server, [&] { return server.connections() == 2; }, 3000ms, huge));
  pump(server, [] { return false; }, 100ms, huge);  // both requests read, both answers under way
  Client c(server.port());
  c.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(pump(server, [&] { c.read_available(); return c.closed; }, 3000ms, huge));
  EXPECT_EQ(c.received.substr(0, 12), "HTTP/1.1 503");
  EXPECT_EQ(server.connections(), 2u);
}

TEST(MetricsServer, NoAnswerIsComputedForAClientPastItsDeadline) {
  Limits limits;
  limits.deadline = 200ms;
  MetricsServer server(any_port(), limits);
  int calls = 0;
  auto slow_metrics = [&] {
    ++calls;
    std::this_thread::sleep_for(300ms);  // a scrape longer than the late client's deadline
    return fixed_metrics();
  };
  Client first(server.port());
  first.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  Client late(server.port());
  late.send_text("GET /metrics HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(pump(server, [&] { first.read_available(); late.read_available(); return first.closed && late.closed; },
                   3000ms, slow_metrics));
  EXPECT_EQ(first.received.substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(late.received, "");  // waited behind the first past its deadline: closed unanswered
  EXPECT_EQ(calls, 1);
}

TEST(MetricsServer, AnAddressInUseIsAClearError) {
  MetricsServer first(any_port());
  try {
    MetricsServer second(ListenAddress{"127.0.0.1", first.port()});
    FAIL() << "bound twice";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(first.port())),
              std::string::npos)
        << e.what();
  }
}
