#include "core/otlp/otlp_exporter.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>

#include <nlohmann/json.hpp>

namespace orch::otlp {
namespace {

std::size_t append_body(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// libcurl's progress callback: a non-zero answer aborts the transfer.
int abort_if_asked(void* abort, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(abort)->load() ? 1 : 0;
}

nlohmann::json string_attribute(const std::string& key, const std::string& value) {
  return {{"key", key}, {"value", {{"stringValue", value}}}};
}

}  // namespace

std::string export_request(const std::vector<std::string>& spans, const std::string& database) {
  nlohmann::json resource = {
      {"attributes", {string_attribute("service.name", "pg_orchestration"), string_attribute("db.name", database)}}};
  nlohmann::json scope = {{"name", "pg_orchestration"}, {"version", "0.1.0"}};
  // The spans are JSON already: spliced in as text, not parsed and printed again.
  std::string list;
  for (const auto& span : spans) list += (list.empty() ? "" : ",") + span;
  return R"({"resourceSpans":[{"resource":)" + resource.dump() + R"(,"scopeSpans":[{"scope":)" + scope.dump() +
         R"(,"spans":[)" + list + "]}]}]}";
}

Delivery send(const std::string& endpoint, const std::string& request, long timeout_ms,
              const std::atomic<bool>* abort) {
  Delivery delivery;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    delivery.problem = "libcurl could not start a handle";
    return delivery;
  }
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(
      curl_slist_append(nullptr, "Content-Type: application/json"), curl_slist_free_all);
  std::string answer;
  curl_easy_setopt(curl.get(), CURLOPT_URL, endpoint.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, request.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(request.size()));
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 1000L));
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a Postgres process
  if (abort) {
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION, abort_if_asked);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, abort);
    curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
  }
  CURLcode rc = curl_easy_perform(curl.get());
  if (rc != CURLE_OK) {
    delivery.problem = "no answer from " + endpoint + ": " + curl_easy_strerror(rc);
    return delivery;
  }
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  delivery.accepted = status >= 200 && status < 300;
  if (!delivery.accepted)
    delivery.problem = endpoint + " answered HTTP " + std::to_string(status) + ": " + answer.substr(0, 200);
  return delivery;
}

ExportThread::ExportThread() {
  // Here, on the main thread, before the export thread exists: libcurl's global state.
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

ExportThread::~ExportThread() { stop_.store(true); }  // threads_ then joins the thread

bool ExportThread::offer(Batch batch) {
  if (busy_) return false;
  busy_ = true;
  threads_.start([this, batch = std::move(batch)]() mutable {
    Delivery delivery = send(batch.endpoint, batch.request, batch.timeout_ms, &stop_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      result_ = Sent{std::move(batch.ids), std::move(delivery)};
    }
    wake_.notify();
  });
  return true;
}

std::optional<Sent> ExportThread::take_result() {
  wake_.drain();
  std::lock_guard<std::mutex> lock(mutex_);
  std::optional<Sent> result;
  result.swap(result_);
  if (result) busy_ = false;
  return result;
}

}  // namespace orch::otlp
