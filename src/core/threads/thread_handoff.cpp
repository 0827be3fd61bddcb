#include "core/threads/thread_handoff.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <stdexcept>

namespace orch::threads {

WakePipe::WakePipe() {
  if (pipe2(fds_, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
}

WakePipe::~WakePipe() {
  if (fds_[0] >= 0) close(fds_[0]);
  if (fds_[1] >= 0) close(fds_[1]);
}

void WakePipe::notify() {
  char byte = 1;
  (void)!write(fds_[1], &byte, 1);  // a full pipe already means "look"
}

void WakePipe::drain() {
  char buffer[256];
  while (read(fds_[0], buffer, sizeof buffer) > 0) {
  }
}

SignalsBlocked::SignalsBlocked() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &previous_);
}

SignalsBlocked::~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

}  // namespace orch::threads
