// PoolQueue: hands thread jobs to a worker pool with as few thread wake-ups
// as the jobs allow. Posting each job to the pool wakes a worker per job,
// and on the io thread: a futex call each, the io thread's largest cost in
// a drain of short jobs (BENCHMARKS.md, "Claiming ahead and PoolQueue"). Here the jobs
// wait in one queue, and workers ("drainers") take them in turn until it
// is empty. A post wakes a worker only when no drainer is free to take
// its job; a drainer that takes a job and leaves others behind, with no
// other drainer free, wakes one more; never more than the pool's size. So
// jobs that block still run side by side, each started within a chain of
// wake-ups, while short jobs run one after another on the threads already
// awake.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "runtime/asio.hpp"

namespace jobd::runtime {

class PoolQueue : public std::enable_shared_from_this<PoolQueue> {
 public:
  // `workers`: the pool's size, the most drainers at once.
  static std::shared_ptr<PoolQueue> create(boost::asio::thread_pool& pool, int workers);

  // Any thread. The job runs on one of the pool's workers.
  void post(std::function<void()> job);

 private:
  PoolQueue(boost::asio::thread_pool& pool, int workers) : pool_(pool), workers_(workers) {}
  // Called with mutex_ held: wakes one more drainer.
  void addDrainer();
  void drain();

  boost::asio::thread_pool& pool_;
  const int workers_;
  std::mutex mutex_;
  std::deque<std::function<void()>> jobs_;
  int drainers_ = 0;  // posted to the pool and not yet returned
  int busy_ = 0;      // of them, running a job
};

}  // namespace jobd::runtime
