// A Docker Engine API client over libcurl: the unix socket (unix:///var/run/docker.sock)
// or TCP (tcp://host:port, with TLS client certificates when given). Blocking calls, one
// client per thread: the executor runs each container's lifecycle on a thread of its own
// pool, so many are in flight at once and none of them touches Postgres.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/user_error.hpp"

namespace orch::docker {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct EngineAddress {
  std::string host = "unix:///var/run/docker.sock";
  std::string tls_ca, tls_cert, tls_key;  // files, for tcp:// with TLS
};

// The engine refused or could not be reached; `status` is the HTTP status (0: no answer).
class EngineError : public UserError {
 public:
  EngineError(std::string message, long status) : UserError(std::move(message)), status_(status) {}
  long status() const { return status_; }

 private:
  long status_;
};

class DockerClient {
 public:
  explicit DockerClient(EngineAddress address);
  ~DockerClient();
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  // GET /version and the API version to use (see negotiate_api_version). Every other call
  // negotiates first if it has not been done.
  const std::string& api_version();

  struct Response {
    long status = 0;
    std::string body;
  };
  // One request; the path is relative to the API version ("/containers/json").
  Response call(const char* method, const std::string& path, const std::string& body = {},
                std::chrono::milliseconds timeout = std::chrono::seconds(60));

  std::string create_container(const std::string& name, const json& body);  // the id
  void start_container(const std::string& id);
  long wait_container(const std::string& id, std::chrono::milliseconds timeout);  // exit code
  json inspect_container(const std::string& id);
  void kill_container(const std::string& id);  // no error if it is not running
  void remove_container(const std::string& id);  // forced; no error if it is gone
  // All containers (running or not) that carry every one of the labels ("key=value" or
  // "key"): the engine ANDs label filters.
  json list_containers(const std::vector<std::string>& label_filters);
  json list_containers(const std::string& label_filter);  // with that one label

  // A container's logs, multiplexed, handed to `sink` piece by piece as they arrive and
  // never held whole (a container may have written gigabytes); `sink` returns false to stop
  // reading. `query` chooses the streams and tail ("stdout=1&stderr=0",
  // "stdout=0&stderr=1&tail=100"). An exception from `sink` ends the read and is rethrown.
  using LogSink = std::function<bool(std::string_view)>;
  void container_logs(const std::string& id, const std::string& query, const LogSink& sink,
                      std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // A container's stdin/stdout/stderr, attached before it starts.
  class Attachment {
   public:
    ~Attachment();
    void send_all(std::string_view data, Clock::time_point deadline);
    void close_input();  // half-close: the agent reads EOF
    // Appends what arrives to `chunk` (waiting until `deadline` at most). False at EOF.
    bool receive(std::string& chunk, Clock::time_point deadline);

   private:
    friend class DockerClient;
    void* curl_ = nullptr;
    int socket_ = -1;
    std::string leftover_;  // stream bytes that came with the upgrade response
  };
  std::unique_ptr<Attachment> attach(const std::string& id);

 private:
  std::string url(const std::string& path) const;
  void configure(void* curl) const;

  EngineAddress address_;
  std::string unix_socket_, base_url_, api_version_;
  void* curl_ = nullptr;  // reused: keeps the connection
};

}  // namespace orch::docker
