#include "core/threads/thread_owner.hpp"

#include <algorithm>

#include "core/threads/thread_handoff.hpp"

namespace orch::threads {

ThreadOwner::~ThreadOwner() {
  for (auto& owned : threads_) owned.thread.join();
}

void ThreadOwner::start(std::function<void()> work) {
  reap();
  auto finished = std::make_shared<std::atomic<bool>>(false);
  SignalsBlocked blocked;
  std::thread thread([work = std::move(work), finished] {
    try {
      work();
    } catch (...) {
      // std::thread would call std::terminate, which brings the whole cluster down.
    }
    finished->store(true);
  });
  threads_.push_back(Owned{std::move(thread), std::move(finished)});
}

std::size_t ThreadOwner::reap() {
  auto done = std::partition(threads_.begin(), threads_.end(), [](const Owned& owned) { return !owned.finished->load(); });
  for (auto it = done; it != threads_.end(); ++it) it->thread.join();  // at its end already: no wait
  threads_.erase(done, threads_.end());
  return threads_.size();
}

}  // namespace orch::threads
