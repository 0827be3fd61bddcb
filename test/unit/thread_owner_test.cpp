#include "core/threads/thread_owner.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>

namespace {

using namespace std::chrono_literals;

void wait_until(const std::atomic<bool>& flag) {
  while (!flag.load()) std::this_thread::sleep_for(1ms);
}

TEST(ThreadOwner, DestroyingItWaitsForARunningThread) {
  std::atomic<bool> started{false}, finished{false};
  auto owner = std::make_unique<orch::threads::ThreadOwner>();
  owner->start([&] {
    started = true;
    std::this_thread::sleep_for(200ms);
    finished = true;
  });
  wait_until(started);
  auto before = std::chrono::steady_clock::now();
  owner.reset();
  EXPECT_TRUE(finished.load()) << "the owner was gone while its thread still ran";
  EXPECT_GE(std::chrono::steady_clock::now() - before, 100ms);
}

// The way the container executor uses it: the owner is the last member, so its threads
// are joined before the members they use are destroyed (ASan reports a heap use after free
// if a thread outlives them).
struct Holder {
  std::atomic<bool> stop{false};
  std::unique_ptr<int> counted = std::make_unique<int>(0);
  orch::threads::ThreadOwner threads;

  ~Holder() { stop = true; }
};

TEST(ThreadOwner, ThreadsNeverOutliveTheObjectTheyCapture) {
  std::atomic<bool> started{false};
  auto holder = std::make_unique<Holder>();
  Holder* h = holder.get();
  holder->threads.start([h, &started] {
    started = true;
    while (!h->stop.load()) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(50ms);  // still using the holder after it was told to stop
    ++*h->counted;
  });
  wait_until(started);
  holder.reset();  // joins: the thread's last write lands before `counted` is freed
}

TEST(ThreadOwner, FinishedThreadsAreReapedSoTheyDoNotAccumulate) {
  orch::threads::ThreadOwner owner;
  for (int i = 0; i < 50; ++i) {
    std::atomic<bool> done{false};
    owner.start([&] { done = true; });
    wait_until(done);
    // `done` is set just before the owner's own flag: reap until it is joined.
    while (owner.reap() != 0) std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(owner.reap(), 0u);
  std::atomic<bool> release{false};
  owner.start([&] { wait_until(release); });
  owner.start([] {});
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(owner.reap(), 1u) << "the running thread is kept, the finished one joined";
  release = true;
}

TEST(ThreadOwner, AnExceptionInAThreadIsDroppedNotTerminate) {
  orch::threads::ThreadOwner owner;
  owner.start([] { throw std::runtime_error("boom"); });
}

TEST(ThreadOwner, ThreadsRunWithEverySignalBlocked) {
  std::atomic<bool> blocks_sigterm{false}, blocks_sighup{false};
  {
    orch::threads::ThreadOwner owner;
    owner.start([&] {
      sigset_t mask;
      pthread_sigmask(SIG_SETMASK, nullptr, &mask);
      blocks_sigterm = sigismember(&mask, SIGTERM);
      blocks_sighup = sigismember(&mask, SIGHUP);
    });
  }
  EXPECT_TRUE(blocks_sigterm.load());
  EXPECT_TRUE(blocks_sighup.load());
  sigset_t mine;
  pthread_sigmask(SIG_SETMASK, nullptr, &mine);
  EXPECT_FALSE(sigismember(&mine, SIGTERM)) << "the caller's mask comes back";
}

}  // namespace
