#include "runtime/pool_queue.hpp"

#include <utility>

namespace jobd::runtime {

std::shared_ptr<PoolQueue> PoolQueue::create(boost::asio::thread_pool& pool, int workers) {
  return std::shared_ptr<PoolQueue>(new PoolQueue(pool, workers));
}

void PoolQueue::post(std::function<void()> job) {
  std::lock_guard<std::mutex> lock(mutex_);
  jobs_.push_back(std::move(job));
  if (drainers_ == busy_ && drainers_ < workers_) {
    addDrainer();
  }
}

void PoolQueue::addDrainer() {
  ++drainers_;
  boost::asio::post(pool_, [self = shared_from_this()] { self->drain(); });
}

void PoolQueue::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!jobs_.empty()) {
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    ++busy_;
    // The jobs left may block no less than this one: another worker takes
    // them meanwhile, unless a drainer is already free to.
    if (!jobs_.empty() && drainers_ == busy_ && drainers_ < workers_) {
      addDrainer();
    }
    lock.unlock();
    job();
    job = nullptr;
    lock.lock();
    --busy_;
  }
  --drainers_;
}

}  // namespace jobd::runtime
