// A small HTTP/1.x server for one thing: answering `GET /metrics` with the Prometheus
// exposition (orchestration.metrics_listen, src/metrics/metrics_worker.cpp).
//
// It has no thread of its own: its owner's loop calls poll(), which does what is ready
// without blocking and says when it must be called again, and sleeps until wake_fd() (an
// epoll descriptor over the listening socket and the connections) is readable. The body
// of /metrics is produced by a callback on that same thread, so the owner can read it with
// SPI.
//
// No client is trusted. A request head is at most Limits::max_request_bytes and must be
// complete within Limits::head_timeout of the accept (a client that sends a byte a second
// gets a 408 then); a connection lives at most Limits::deadline, whatever it does (one that
// never reads the answer is cut off then); at most Limits::max_connections are open at
// once, and a new one when all are taken pushes out the oldest that has not finished its
// request yet (408), or, if every one is being answered, is told 503; any bytes at all get
// at worst a 4xx. So idle connections cannot keep a scraper out. Postgres-free:
// unit-tested in test/unit/metrics_server_test.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace orch::http {

struct Limits {
  int max_connections = 16;
  std::chrono::milliseconds head_timeout{2000};
  std::chrono::milliseconds deadline{10000};
  std::size_t max_request_bytes = 8192;
};

// Where to listen: a numeric or named host (empty: every interface) and a port.
struct ListenAddress {
  std::string host;
  int port = 0;
};

// orchestration.metrics_listen's syntax: "host:port" (a name or an IPv4 address),
// "[ipv6]:port", "*:port" (every IPv4 interface) or "port" (127.0.0.1). Throws
// std::invalid_argument saying what is wrong.
ListenAddress parse_listen_address(std::string_view text);

struct RequestHead {
  std::string method;
  std::string target;
  std::string version;
};

enum class HeadStatus { incomplete, complete, malformed, too_large };

// Reads a request head (request line and header lines up to the empty line; lines may end
// in CRLF or LF) from the start of `bytes`. Only HTTP/1.0 and HTTP/1.1; no NUL or other
// control bytes but TAB.
HeadStatus parse_request_head(std::string_view bytes, std::size_t max_bytes, RequestHead& head);

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// The answer to a well-formed head: GET /metrics (query string ignored) calls `metrics`;
// another method is 405, another path 404.
Response answer(const RequestHead& head, const std::function<Response()>& metrics);

// The bytes on the wire: status line, Content-Type, Content-Length, Connection: close
// (and Allow: GET for a 405), then the body.
std::string serialize(const Response& response);

class MetricsServer {
 public:
  // Binds and listens (non-blocking). Throws std::runtime_error naming the address.
  explicit MetricsServer(const ListenAddress& where, Limits limits = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Readable when poll() has something to do.
  int wake_fd() const { return epoll_fd_; }
  // The port bound (the one asked for, or the kernel's pick for port 0).
  int port() const { return port_; }
  std::size_t connections() const { return connections_.size(); }

  // Accepts, reads, answers, writes and closes what is ready, without blocking; closes
  // connections past their deadlines. Returns milliseconds until the next deadline, or -1
  // when no connection is open. `metrics` is called only for a client still within its
  // deadline; it may throw: the client gets a 500.
  long poll(const std::function<Response()>& metrics);

 private:
  enum class State { reading, writing, draining };
  struct Connection {
    State state = State::reading;
    std::chrono::steady_clock::time_point accepted;
    std::chrono::steady_clock::time_point head_deadline;
    std::chrono::steady_clock::time_point deadline;
    std::string in;
    std::string out;
    std::size_t written = 0;
  };

  void accept_all();
  void on_ready(int fd, const std::function<Response()>& metrics);
  void read_request(int fd, Connection& c, const std::function<Response()>& metrics);
  void start_writing(int fd, Connection& c, std::string bytes);
  void write_some(int fd, Connection& c);
  void drain(int fd);
  void turn_away(int fd);
  void watch(int fd, unsigned events, bool add);
  void close_connection(int fd);

  Limits limits_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int port_ = 0;
  std::map<int, Connection> connections_;
};

}  // namespace orch::http
