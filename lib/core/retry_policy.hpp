// The delay before a retried attempt (SPEC §3 retry_delay, retry_backoff,
// retry_delay_max), and whether attempts remain. Pure functions; the jitter
// comes from the caller's random source. Any thread.
#pragma once

#include <random>

#include "core/duration.hpp"

namespace jobd {

// fixed: delay. exponential: delay x 2^(attempt-1), capped by max_delay,
// then +-10% jitter drawn from rng.
Duration retryDelay(Duration delay, bool exponential, Duration max_delay, int attempt,
                    std::mt19937_64& rng);

// A job gets max_retries + 1 attempts; attempt counts from 1.
inline bool attemptsRemain(int attempt, int max_retries) {
  return attempt <= max_retries;
}

}  // namespace jobd
