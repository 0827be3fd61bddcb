#include "executors/container_executor.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <stdexcept>

#include <curl/curl.h>

namespace orch::executors {
namespace {

std::string iso8601(std::chrono::system_clock::time_point when) {
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<long long>(micros % 1000000));
  return buffer;
}

}  // namespace

ContainerExecutor::ContainerExecutor() {
  // Here, on the main thread, before any thread exists: libcurl's global state.
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

ContainerExecutor::~ContainerExecutor() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& entry : running_) entry.second->leave.store(true);
  }
  // threads_ (the last member) joins them as the members are destroyed.
}

void ContainerExecutor::launch(ContainerJob job) {
  auto stop = std::make_shared<docker::StopFlags>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_[job.node_id] = stop;
  }
  threads_.start([this, job = std::move(job), stop]() mutable {
    docker::AttemptOutcome outcome;
    try {
      docker::DockerClient client(job.address);
      outcome = job.adopt ? docker::adopt_container(client, job.adopt_name, job.limits,
                                                    std::min(job.request.pids, job.ceilings.pids),
                                                    std::min(job.request.memory_mb, job.ceilings.memory_mb), *stop)
                          : docker::run_container_attempt(client, job.request, job.ceilings, job.input, job.limits,
                                                          *stop);
    } catch (const std::exception& e) {
      outcome.error = std::string("the container could not run: ") + e.what();
    }
    std::string finished_at = iso8601(std::chrono::system_clock::now());
    finish(FinishedJob{std::move(job), std::move(outcome), std::move(finished_at)});
  });
}

void ContainerExecutor::remove_later(std::vector<std::string> container_ids, docker::EngineAddress address) {
  if (container_ids.empty()) return;
  threads_.start([ids = std::move(container_ids), address = std::move(address)] {
    try {
      docker::DockerClient client(address);
      for (const auto& id : ids) docker::remove_container_quietly(client, id);
    } catch (const std::exception&) {
      // crash recovery removes what is left
    }
  });
}

void ContainerExecutor::finish(FinishedJob finished) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_.erase(finished.job.node_id);
    finished_.push_back(std::move(finished));
  }
  wake_.notify();
}

std::vector<FinishedJob> ContainerExecutor::take_finished() {
  wake_.drain();
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<FinishedJob> out;
  out.swap(finished_);
  return out;
}

std::vector<std::int64_t> ContainerExecutor::in_flight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::int64_t> nodes;
  for (const auto& entry : running_) nodes.push_back(entry.first);
  return nodes;
}

void ContainerExecutor::cancel(std::int64_t node_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = running_.find(node_id);
  if (it != running_.end()) it->second->cancel.store(true);
}

}  // namespace orch::executors
