// How long a background worker waits before it tries again a turn that failed (its
// transaction rolled back): a short while the first time, since the next turn is what gets
// going again everything the failed one had taken (a scheduler's pass holds every
// project's nodes; its retry records carefully, failing alone a result that cannot be
// stored), then twice as long at each failure in a row, up to a ceiling (the poll
// interval): an error that persists costs, once the waits have grown, a try and a logged
// error per ceiling, plus one per wake-up the worker gets meanwhile (a commit that gives
// it work, a container that ends), but no spin.
#pragma once

#include <algorithm>

namespace orch {

class FailureBackoff {
 public:
  static constexpr long kFirstMs = 10;

  // A turn failed: how long to wait before the next one (at most ceiling_ms).
  long failed(long ceiling_ms) {
    long wait = std::min(next_ms_, ceiling_ms);
    next_ms_ = std::min(next_ms_ * 2, ceiling_ms);
    return wait;
  }
  // A turn succeeded: the next failure starts again from the first wait.
  void succeeded() { next_ms_ = kFirstMs; }

 private:
  long next_ms_ = kFirstMs;
};

}  // namespace orch
