// Threads that belong to an object: ThreadOwner starts them and joins every one of them.
//
// A thread that captures an object must not outlive it. A ThreadOwner, declared as the
// last member of the object whose threads it starts, is destroyed first and joins them
// all before the members they use go. It does not stop them: whoever gives a thread its
// work must also tell it to end (a flag it checks) before the owner's destructor waits.
// A thread that has finished is joined at the next start(), so an owner that lives as
// long as its process does not collect ended threads.
//
// Threads are made with every signal blocked (SignalsBlocked): in a Postgres process only
// the main thread may take SIGTERM, SIGHUP or SIGUSR1. start(), reap() and the destructor
// belong to the thread that owns the owner (in the workers: the main thread).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace orch::threads {

class ThreadOwner {
 public:
  ThreadOwner() = default;
  ~ThreadOwner();  // joins every thread it started, waiting for those still running
  ThreadOwner(const ThreadOwner&) = delete;
  ThreadOwner& operator=(const ThreadOwner&) = delete;

  // Runs `work` on a new thread (after joining the threads that have finished). `work`
  // should catch what it throws: an exception that leaves it is dropped, not rethrown.
  void start(std::function<void()> work);
  // Joins the threads that have finished; returns how many are left (still running).
  std::size_t reap();

 private:
  struct Owned {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;  // set by the thread as its last act
  };
  std::vector<Owned> threads_;
};

}  // namespace orch::threads
