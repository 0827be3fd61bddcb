#include "core/threads/thread_handoff.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>

#include <thread>

namespace {

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST(WakePipe, AnotherThreadsNotifyWakesThePollAndDrainResetsIt) {
  orch::threads::WakePipe pipe;
  EXPECT_FALSE(readable(pipe.fd(), 0));
  std::thread([&] { pipe.notify(); }).join();
  EXPECT_TRUE(readable(pipe.fd(), 1000));
  pipe.drain();
  EXPECT_FALSE(readable(pipe.fd(), 0));
}

TEST(WakePipe, NotifyNeverBlocksEvenWhenNobodyDrains) {
  orch::threads::WakePipe pipe;
  for (int i = 0; i < 200000; ++i) pipe.notify();  // far beyond a pipe's 64 KiB buffer
  EXPECT_TRUE(readable(pipe.fd(), 0));
  pipe.drain();
  EXPECT_FALSE(readable(pipe.fd(), 0));
}

TEST(SignalsBlocked, ThreadsMadeUnderItBlockEverySignalAndTheMaskComesBack) {
  sigset_t before;
  pthread_sigmask(SIG_SETMASK, nullptr, &before);
  ASSERT_FALSE(sigismember(&before, SIGTERM));
  bool thread_blocks_sigterm = false, thread_blocks_sigusr1 = false;
  {
    orch::threads::SignalsBlocked blocked;
    std::thread([&] {
      sigset_t mask;
      pthread_sigmask(SIG_SETMASK, nullptr, &mask);
      thread_blocks_sigterm = sigismember(&mask, SIGTERM);
      thread_blocks_sigusr1 = sigismember(&mask, SIGUSR1);
    }).join();
  }
  EXPECT_TRUE(thread_blocks_sigterm);
  EXPECT_TRUE(thread_blocks_sigusr1);
  sigset_t after;
  pthread_sigmask(SIG_SETMASK, nullptr, &after);
  EXPECT_FALSE(sigismember(&after, SIGTERM));
}

}  // namespace
