#include "core/http/metrics_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace orch::http {
namespace {

using Clock = std::chrono::steady_clock;

int parse_port(std::string_view digits, std::string_view whole) {
  if (digits.empty() || digits.size() > 5 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw std::invalid_argument("\"" + std::string(whole) + "\" has no port number (host:port, [ipv6]:port or port)");
  int port = std::stoi(std::string(digits));
  if (port < 1 || port > 65535)
    throw std::invalid_argument("port " + std::to_string(port) + " is not between 1 and 65535");
  return port;
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

Response plain(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string system_error(const std::string& what) { return what + ": " + std::strerror(errno); }

// A short answer for a client the server will not wait for, then the close: half-closed
// first, and what the client sent already read, so that the close does not reset the
// connection before the answer arrives.
void answer_and_hang_up(int fd, const Response& response) {
  std::string bytes = serialize(response);
  (void)send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown(fd, SHUT_WR);
  char discard[4096];
  while (recv(fd, discard, sizeof discard, MSG_DONTWAIT) > 0) {
  }
  close(fd);
}

}  // namespace

ListenAddress parse_listen_address(std::string_view text) {
  ListenAddress where;
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    // A port alone: this machine only. Exposing the numbers to a network is a choice to
    // write down ("*:9187").
    where.host = "127.0.0.1";
    where.port = parse_port(text, text);
    return where;
  }
  std::string_view host = text.substr(0, colon);
  where.port = parse_port(text.substr(colon + 1), text);
  if (host.empty()) throw std::invalid_argument("\"" + std::string(text) + "\" has no host (use *:port for every interface)");
  if (host == "*") return where;  // every interface: host stays empty
  auto all_of = [](std::string_view s, const char* allowed) {
    return !s.empty() && s.find_first_not_of(allowed) == std::string_view::npos;
  };
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']' || !all_of(host.substr(1, host.size() - 2), "0123456789abcdefABCDEF:."))
      throw std::invalid_argument("\"" + std::string(host) + "\" is not an IPv6 address in brackets, such as [::1]");
    where.host = std::string(host.substr(1, host.size() - 2));
    return where;
  }
  if (host.find(':') != std::string_view::npos)
    throw std::invalid_argument("\"" + std::string(text) + "\": write an IPv6 address in brackets, [::1]:9187");
  if (!all_of(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"))
    throw std::invalid_argument("\"" + std::string(host) + "\" is not a host name or an IPv4 address");
  where.host = std::string(host);
  return where;
}

HeadStatus parse_request_head(std::string_view bytes, std::size_t max_bytes, RequestHead& head) {
  // The head ends at its first empty line: a line end followed by CRLF or by a bare LF
  // (tolerated, as most servers do; mixed endings too).
  std::size_t end = bytes.find("\n\r\n");
  std::size_t bare_end = bytes.find("\n\n");
  if (bare_end != std::string_view::npos && (end == std::string_view::npos || bare_end < end)) end = bare_end;
  std::size_t head_size = end == std::string_view::npos ? bytes.size() : end;
  if (head_size > max_bytes) return HeadStatus::too_large;
  // Bytes no request head has: reject them as soon as they arrive, not at the end.
  for (std::size_t i = 0; i < head_size; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f) return HeadStatus::malformed;
  }
  if (end == std::string_view::npos) return HeadStatus::incomplete;

  std::string_view request_line = bytes.substr(0, std::min(bytes.find('\n'), head_size));
  if (!request_line.empty() && request_line.back() == '\r') request_line.remove_suffix(1);
  std::size_t sp1 = request_line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || request_line.find(' ', sp2 + 1) != std::string_view::npos)
    return HeadStatus::malformed;
  std::string_view method = request_line.substr(0, sp1);
  std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = request_line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
    return HeadStatus::malformed;
  if (target.empty() || target.front() != '/') return HeadStatus::malformed;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return HeadStatus::malformed;
  // Every header line has a name and a colon; no line may start with whitespace (obsolete
  // line folding, a smuggling vector).
  std::size_t pos = request_line.size();
  while (pos < head_size) {
    std::size_t next = bytes.find('\n', pos);
    if (next == std::string_view::npos || next > head_size) next = head_size;
    std::string_view line = bytes.substr(pos, next - pos);
    if (!line.empty() && line.front() == '\n') line.remove_prefix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) {
      std::size_t colon = line.find(':');
      if (colon == 0 || colon == std::string_view::npos || line.front() == ' ' || line.front() == '\t')
        return HeadStatus::malformed;
    }
    pos = next + 1;
  }
  head.method = std::string(method);
  head.target = std::string(target);
  head.version = std::string(version);
  return HeadStatus::complete;
}

Response answer(const RequestHead& head, const std::function<Response()>& metrics) {
  std::string path = head.target.substr(0, head.target.find('?'));
  if (path != "/metrics") return plain(404, "Only /metrics is served here.\n");
  if (head.method != "GET") return plain(405, "Only GET is answered.\n");
  return metrics();
}

std::string serialize(const Response& response) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + reason(response.status) + "\r\n";
  out += "Content-Type: " + response.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  if (response.status == 405) out += "Allow: GET\r\n";
  out += "Connection: close\r\n\r\n";
  out += response.body;
  return out;
}

MetricsServer::MetricsServer(const ListenAddress& where, Limits limits) : limits_(limits) {
  std::string label = (where.host.empty() ? "*" : where.host) + ":" + std::to_string(where.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  std::string service = std::to_string(where.port);
  int rc = getaddrinfo(where.host.empty() ? nullptr : where.host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) throw std::runtime_error("cannot listen on " + label + ": " + gai_strerror(rc));
  std::string last_error = "no address";
  for (addrinfo* a = found; a && listen_fd_ < 0; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = system_error("socket");
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
      last_error = system_error("bind");
      close(fd);
      continue;
    }
    listen_fd_ = fd;
  }
  freeaddrinfo(found);
  if (listen_fd_ < 0) throw std::runtime_error("cannot listen on " + label + ": " + last_error);

  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    std::string error = system_error("epoll_create1");
    close(listen_fd_);
    throw std::runtime_error(error);
  }
  watch(listen_fd_, EPOLLIN, true);
}

MetricsServer::~MetricsServer() {
  for (auto& entry : connections_) close(entry.first);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (listen_fd_ >= 0) close(listen_fd_);
}

void MetricsServer::watch(int fd, unsigned events, bool add) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  epoll_ctl(epoll_fd_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event);
}

void MetricsServer::close_connection(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  connections_.erase(fd);
}

long MetricsServer::poll(const std::function<Response()>& metrics) {
  epoll_event events[64];
  int ready = epoll_wait(epoll_fd_, events, 64, 0);
  for (int i = 0; i < ready; ++i) {
    int fd = events[i].data.fd;
    if (fd == listen_fd_)
      accept_all();
    else if (connections_.count(fd))
      on_ready(fd, metrics);
  }
  // A request not complete at its head deadline gets a 408; whatever a connection is
  // doing, it ends at its deadline.
  Clock::time_point now = Clock::now();
  std::vector<int> slow, expired;
  long next = -1;
  for (const auto& [fd, c] : connections_) {
    Clock::time_point until = c.state == State::reading ? std::min(c.head_deadline, c.deadline) : c.deadline;
    if (until <= now) {
      (c.state == State::reading ? slow : expired).push_back(fd);
      continue;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
    next = next < 0 ? left : std::min<long>(next, left);
  }
  for (int fd : slow) turn_away(fd);
  for (int fd : expired) close_connection(fd);
  return next;
}

void MetricsServer::accept_all() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: none left; anything else: the client is gone, or no fds now
    if (static_cast<int>(connections_.size()) >= limits_.max_connections) {
      // Full. The oldest connection that has not sent its request yet makes room: idle
      // connections, however many someone opens, cannot keep a scraper out.
      int oldest = -1;
      for (const auto& [open_fd, open] : connections_)
        if (open.state == State::reading && (oldest < 0 || open.accepted < connections_.at(oldest).accepted))
          oldest = open_fd;
      if (oldest >= 0) {
        turn_away(oldest);
      } else {
        // Every one is being answered: say so and hang up rather than leave this one in
        // the backlog, behind them.
        answer_and_hang_up(fd, plain(503, "Too many connections.\n"));
        continue;
      }
    }
    Connection& c = connections_[fd];
    c.accepted = Clock::now();
    c.head_deadline = c.accepted + limits_.head_timeout;
    c.deadline = c.accepted + limits_.deadline;
    watch(fd, EPOLLIN, true);
  }
}

void MetricsServer::on_ready(int fd, const std::function<Response()>& metrics) {
  Connection& c = connections_[fd];
  switch (c.state) {
    case State::reading: read_request(fd, c, metrics); break;
    case State::writing: write_some(fd, c); break;
    case State::draining: drain(fd); break;
  }
}

void MetricsServer::read_request(int fd, Connection& c, const std::function<Response()>& metrics) {
  char buffer[4096];
  // Read at most one past the limit: enough to know a head is too large.
  std::size_t room = limits_.max_request_bytes + 4 - std::min(c.in.size(), limits_.max_request_bytes + 4);
  ssize_t n = recv(fd, buffer, std::min(sizeof buffer, std::max<std::size_t>(room, 1)), 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    close_connection(fd);  // gone before it finished asking
    return;
  }
  if (n < 0) return;
  c.in.append(buffer, static_cast<std::size_t>(n));
  RequestHead head;
  switch (parse_request_head(c.in, limits_.max_request_bytes, head)) {
    case HeadStatus::incomplete:
      return;
    case HeadStatus::too_large:
      start_writing(fd, c, serialize(plain(431, "The request head is too large.\n")));
      return;
    case HeadStatus::malformed:
      start_writing(fd, c, serialize(plain(400, "Malformed request.\n")));
      return;
    case HeadStatus::complete:
      break;
  }
  if (Clock::now() >= c.deadline) {
    close_connection(fd);  // it waited its whole time behind others: nobody to answer
    return;
  }
  Response response;
  try {
    response = answer(head, metrics);
  } catch (const std::exception&) {
    // The owner logs what went wrong; the client learns only that it did.
    response = plain(500, "The metrics could not be read; the server log says why.\n");
  }
  start_writing(fd, c, serialize(response));
}

void MetricsServer::start_writing(int fd, Connection& c, std::string bytes) {
  c.state = State::writing;
  c.in.clear();
  c.in.shrink_to_fit();
  c.out = std::move(bytes);
  c.written = 0;
  watch(fd, EPOLLOUT, false);
  write_some(fd, c);
}

void MetricsServer::write_some(int fd, Connection& c) {
  while (c.written < c.out.size()) {
    ssize_t n = send(fd, c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;  // a slow reader: wait
      close_connection(fd);
      return;
    }
    c.written += static_cast<std::size_t>(n);
  }
  // All sent. Closing now, with bytes of the client's still unread, would reset the
  // connection and could lose the answer: half-close and read until the client closes.
  shutdown(fd, SHUT_WR);
  c.state = State::draining;
  c.out.clear();
  c.out.shrink_to_fit();
  watch(fd, EPOLLIN, false);
}

// A connection that sent no complete request in time, or must make room: a 408, then closed.
void MetricsServer::turn_away(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  connections_.erase(fd);
  answer_and_hang_up(fd, plain(408, "The request did not arrive in time.\n"));
}

void MetricsServer::drain(int fd) {
  char buffer[4096];
  ssize_t n = recv(fd, buffer, sizeof buffer, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close_connection(fd);
}

}  // namespace orch::http
