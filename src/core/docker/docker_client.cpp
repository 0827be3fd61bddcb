#include "core/docker/docker_client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <exception>

#include <curl/curl.h>

#include "core/docker/container_config.hpp"

namespace orch::docker {
namespace {

std::size_t append_body(char* data, std::size_t size, std::size_t count, void* target) {
  static_cast<std::string*>(target)->append(data, size * count);
  return size * count;
}

std::string escape(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buffer[4];
      std::snprintf(buffer, sizeof buffer, "%%%02X", c);
      out += buffer;
    }
  }
  return out;
}

std::string engine_message(const std::string& body) {
  auto parsed = json::parse(body, nullptr, false);
  if (parsed.is_object() && parsed.contains("message") && parsed["message"].is_string())
    return parsed["message"].get<std::string>();
  return body.substr(0, 300);
}

// The engine answered, but not as hoped: its own message, with what we were doing.
[[noreturn]] void refused(const std::string& what, const DockerClient::Response& r) {
  throw EngineError(what + " (" + std::to_string(r.status) + "): " + engine_message(r.body), r.status);
}

// Waits until the socket is readable or writable, or the deadline passes.
bool wait_socket(int socket, bool for_write, Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd fd{socket, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
  return poll(&fd, 1, static_cast<int>(std::min<long long>(left, 1000))) >= 0;
}

}  // namespace

DockerClient::DockerClient(EngineAddress address) : address_(std::move(address)) {
  const std::string& host = address_.host;
  if (host.rfind("unix://", 0) == 0) {
    unix_socket_ = host.substr(7);
    base_url_ = "http://docker";
  } else if (host.rfind("tcp://", 0) == 0) {
    bool tls = !address_.tls_cert.empty() || !address_.tls_ca.empty();
    base_url_ = (tls ? "https://" : "http://") + host.substr(6);
  } else {
    throw UserError("orchestration.docker_host \"" + host + "\" is neither unix://PATH nor tcp://HOST:PORT");
  }
  curl_ = curl_easy_init();
  if (!curl_) throw EngineError("libcurl could not start a handle", 0);
}

DockerClient::~DockerClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

void DockerClient::configure(void* handle) const {
  CURL* curl = static_cast<CURL*>(handle);
  if (!unix_socket_.empty()) curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, unix_socket_.c_str());
  if (!address_.tls_ca.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, address_.tls_ca.c_str());
  if (!address_.tls_cert.empty()) curl_easy_setopt(curl, CURLOPT_SSLCERT, address_.tls_cert.c_str());
  if (!address_.tls_key.empty()) curl_easy_setopt(curl, CURLOPT_SSLKEY, address_.tls_key.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for timeouts
}

std::string DockerClient::url(const std::string& path) const {
  return base_url_ + (api_version_.empty() ? "" : "/v" + api_version_) + path;
}

const std::string& DockerClient::api_version() {
  if (api_version_.empty()) {
    Response answer = call("GET", "/version", {}, std::chrono::seconds(10));
    if (answer.status != 200)
      throw EngineError("the Docker engine answered GET /version with " + std::to_string(answer.status), answer.status);
    api_version_ = negotiate_api_version(json::parse(answer.body, nullptr, false));
  }
  return api_version_;
}

DockerClient::Response DockerClient::call(const char* method, const std::string& path,
                                          const std::string& body, std::chrono::milliseconds timeout) {
  if (api_version_.empty() && path != "/version") api_version();
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);
  configure(curl);
  Response response;
  std::string target = url(path);
  curl_easy_setopt(curl, CURLOPT_URL, target.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (std::string(method) == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK)
    throw EngineError(std::string("the Docker engine at ") + address_.host + " did not answer " + method + " " +
                          path + ": " + curl_easy_strerror(rc), 0);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

std::string DockerClient::create_container(const std::string& name, const json& body) {
  Response r = call("POST", "/containers/create?name=" + escape(name), body.dump());
  if (r.status == 201) return json::parse(r.body).at("Id").get<std::string>();
  if (r.status == 404)
    throw EngineError("image " + body.value("Image", std::string()) + " is not on the Docker engine: " +
                          engine_message(r.body), 404);
  refused("the Docker engine refused to create container " + name, r);
}

void DockerClient::start_container(const std::string& id) {
  Response r = call("POST", "/containers/" + id + "/start");
  if (r.status != 204 && r.status != 304)
    refused("the Docker engine could not start the container", r);
}

long DockerClient::wait_container(const std::string& id, std::chrono::milliseconds timeout) {
  Response r = call("POST", "/containers/" + id + "/wait", {}, timeout);
  if (r.status != 200)
    refused("waiting for the container failed", r);
  return json::parse(r.body).value("StatusCode", -1L);
}

json DockerClient::inspect_container(const std::string& id) {
  Response r = call("GET", "/containers/" + id + "/json");
  if (r.status != 200)
    refused("inspecting the container failed", r);
  return json::parse(r.body);
}

void DockerClient::kill_container(const std::string& id) {
  Response r = call("POST", "/containers/" + id + "/kill");
  if (r.status != 204 && r.status != 404 && r.status != 409)
    refused("killing the container failed", r);
}

void DockerClient::remove_container(const std::string& id) {
  Response r = call("DELETE", "/containers/" + id + "?force=1&v=1");
  if (r.status != 204 && r.status != 404)
    refused("removing the container failed", r);
}

json DockerClient::list_containers(const std::vector<std::string>& label_filters) {
  std::string filters = json{{"label", label_filters}}.dump();
  Response r = call("GET", "/containers/json?all=1&filters=" + escape(filters));
  if (r.status != 200)
    refused("listing containers failed", r);
  return json::parse(r.body);
}

json DockerClient::list_containers(const std::string& label_filter) {
  return list_containers(std::vector<std::string>{label_filter});
}

namespace {

// The state of one streamed GET: a 200 answer's body goes to the sink, any other answer
// (the engine's error message) is kept, but only its start.
struct LogRead {
  CURL* curl;
  const DockerClient::LogSink* sink;
  std::string error_body;
  bool stopped = false;                // the sink had enough
  std::exception_ptr failure;          // the sink threw: rethrown once libcurl has returned
};

std::size_t stream_body(char* data, std::size_t size, std::size_t count, void* target) {
  auto* read = static_cast<LogRead*>(target);
  std::size_t bytes = size * count;
  long status = 0;
  curl_easy_getinfo(read->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    read->error_body.append(data, std::min(bytes, std::size_t{4096} - std::min(read->error_body.size(), std::size_t{4096})));
    return bytes;
  }
  try {  // an exception must not unwind through libcurl's C frames
    if ((*read->sink)(std::string_view(data, bytes))) return bytes;
    read->stopped = true;
  } catch (...) {
    read->failure = std::current_exception();
  }
  return 0;  // libcurl ends the transfer with CURLE_WRITE_ERROR
}

}  // namespace

void DockerClient::container_logs(const std::string& id, const std::string& query, const LogSink& sink,
                                  std::chrono::milliseconds timeout) {
  if (api_version_.empty()) api_version();
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);
  configure(curl);
  std::string path = "/containers/" + id + "/logs?" + query;
  std::string target = url(path);
  LogRead read{curl, &sink, {}, false, nullptr};
  curl_easy_setopt(curl, CURLOPT_URL, target.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, stream_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &read);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  CURLcode rc = curl_easy_perform(curl);
  if (read.failure) std::rethrow_exception(read.failure);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && read.stopped))
    throw EngineError(std::string("the Docker engine at ") + address_.host + " did not answer GET " + path + ": " +
                          curl_easy_strerror(rc), 0);
  Response response;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  response.body = std::move(read.error_body);
  if (response.status != 200) refused("reading the container's logs failed", response);
}

std::unique_ptr<DockerClient::Attachment> DockerClient::attach(const std::string& id) {
  const std::string& version = api_version();
  auto attachment = std::unique_ptr<Attachment>(new Attachment());
  CURL* curl = curl_easy_init();
  if (!curl) throw EngineError("libcurl could not start a handle", 0);
  attachment->curl_ = curl;
  configure(curl);
  // libcurl has no generic HTTP upgrade: connect only, then speak HTTP on the socket.
  std::string target = base_url_ + "/";
  curl_easy_setopt(curl, CURLOPT_URL, target.c_str());
  curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) throw EngineError(std::string("attaching to the container failed: ") + curl_easy_strerror(rc), 0);
  curl_socket_t socket = CURL_SOCKET_BAD;
  curl_easy_getinfo(curl, CURLINFO_ACTIVESOCKET, &socket);
  attachment->socket_ = static_cast<int>(socket);

  std::string request = "POST /v" + version + "/containers/" + id +
                        "/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                        "Host: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n";
  auto deadline = Clock::now() + std::chrono::seconds(10);
  attachment->send_all(request, deadline);
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (!attachment->receive(head, deadline) || Clock::now() > deadline)
      throw EngineError("the Docker engine closed the attach connection before answering", 0);
    // The answer's head is a few lines; whatever sends more is not an engine to wait for.
    if (head.size() > (64 << 10)) throw EngineError("the Docker engine's answer to attach has no end", 0);
  }
  std::size_t end = head.find("\r\n\r\n") + 4;
  attachment->leftover_ = head.substr(end);
  std::string status_line = head.substr(0, head.find("\r\n"));
  if (status_line.find(" 101") == std::string::npos && status_line.find(" 200") == std::string::npos)
    throw EngineError("the Docker engine refused to attach: " + status_line, 0);
  return attachment;
}

DockerClient::Attachment::~Attachment() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

void DockerClient::Attachment::send_all(std::string_view data, Clock::time_point deadline) {
  CURL* curl = static_cast<CURL*>(curl_);
  while (!data.empty()) {
    std::size_t sent = 0;
    CURLcode rc = curl_easy_send(curl, data.data(), data.size(), &sent);
    if (rc == CURLE_AGAIN) {
      if (Clock::now() > deadline) throw EngineError("timed out writing to the container's stdin", 0);
      wait_socket(socket_, true, deadline);
      continue;
    }
    if (rc != CURLE_OK) throw EngineError(std::string("writing to the container's stdin failed: ") + curl_easy_strerror(rc), 0);
    data.remove_prefix(sent);
  }
}

void DockerClient::Attachment::close_input() {
  if (socket_ >= 0) shutdown(socket_, SHUT_WR);
}

bool DockerClient::Attachment::receive(std::string& chunk, Clock::time_point deadline) {
  if (!leftover_.empty()) {
    chunk += leftover_;
    leftover_.clear();
    return true;
  }
  CURL* curl = static_cast<CURL*>(curl_);
  char buffer[65536];
  while (true) {
    std::size_t got = 0;
    CURLcode rc = curl_easy_recv(curl, buffer, sizeof buffer, &got);
    if (rc == CURLE_OK) {
      if (got == 0) return false;  // EOF
      chunk.append(buffer, got);
      return true;
    }
    if (rc != CURLE_AGAIN) return false;  // the connection broke: treat as the end
    if (Clock::now() >= deadline) return true;  // nothing yet; the caller checks its clock
    wait_socket(socket_, false, deadline);
  }
}

}  // namespace orch::docker
