// Handing work from library threads to a Postgres process's main thread.
//
// Only the main thread may call Postgres. Threads (container attempts, nats.c's own) put
// what they have into a queue and write a byte into a WakePipe; the main thread waits on
// its latch *and* the pipe's read end (WaitLatchOrSocket), so it wakes at once.
// SignalsBlocked is held while threads are created: they inherit the creator's signal
// mask, and Postgres's handlers (SIGTERM, SIGHUP, SIGUSR1) must run on the main thread.
#pragma once

#include <signal.h>

namespace orch::threads {

class WakePipe {
 public:
  WakePipe();
  ~WakePipe();
  WakePipe(const WakePipe&) = delete;
  WakePipe& operator=(const WakePipe&) = delete;

  int fd() const { return fds_[0]; }  // becomes readable after notify()
  void notify();                      // any thread; never blocks
  void drain();                       // the main thread, before it takes the queue

 private:
  int fds_[2] = {-1, -1};
};

class SignalsBlocked {
 public:
  SignalsBlocked();
  ~SignalsBlocked();
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t previous_;
};

}  // namespace orch::threads
