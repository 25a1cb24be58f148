#include "core/retry_policy.hpp"

#include <algorithm>
#include <cmath>

namespace jobd {

Duration retryDelay(Duration delay, bool exponential, Duration max_delay, int attempt,
                    std::mt19937_64& rng) {
  if (!exponential) {
    return delay;
  }
  // 2^(attempt-1) in double, so that a large attempt count saturates at the
  // cap instead of overflowing.
  double scaled = static_cast<double>(delay.count()) * std::pow(2.0, std::max(0, attempt - 1));
  double capped = std::min(scaled, static_cast<double>(max_delay.count()));
  std::uniform_real_distribution<double> jitter(0.9, 1.1);
  return Duration(static_cast<Duration::rep>(std::llround(capped * jitter(rng))));
}

}  // namespace jobd
