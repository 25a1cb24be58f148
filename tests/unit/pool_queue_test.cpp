// PoolQueue (runtime/pool_queue.hpp): thread jobs that block still run side
// by side, up to the pool's size, and a flood of short ones all run. Runs
// under ThreadSanitizer too (scripts/test.sh: "Concurrent").
#include "runtime/pool_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace jobd::runtime {
namespace {

using namespace std::chrono_literals;

// Waits up to 10 s for `done`.
template <typename Done>
bool waitFor(std::mutex& mutex, std::condition_variable& changed, Done done) {
  std::unique_lock<std::mutex> lock(mutex);
  return changed.wait_for(lock, 10s, done);
}

TEST(PoolQueueConcurrentTest, JobsThatBlockRunSideBySideUpToThePoolsSize) {
  boost::asio::thread_pool pool(4);
  auto queue = PoolQueue::create(pool, 4);
  std::mutex mutex;
  std::condition_variable changed;
  int inside = 0;
  int most = 0;
  bool open = false;
  for (int i = 0; i < 6; ++i) {
    queue->post([&] {
      std::unique_lock<std::mutex> lock(mutex);
      ++inside;
      most = std::max(most, inside);
      changed.notify_all();
      changed.wait(lock, [&] { return open; });
      --inside;
      changed.notify_all();
    });
  }
  // Four block at once (each started by a wake-up chain), the other two
  // wait for a worker.
  EXPECT_TRUE(waitFor(mutex, changed, [&] { return inside == 4; }));
  {
    std::lock_guard<std::mutex> lock(mutex);
    open = true;
  }
  changed.notify_all();
  EXPECT_TRUE(waitFor(mutex, changed, [&] { return inside == 0; }));
  pool.join();
  EXPECT_EQ(most, 4);
}

TEST(PoolQueueConcurrentTest, AJobPostedWhileEveryDrainerBlocksGetsAWorkerOfItsOwn) {
  boost::asio::thread_pool pool(3);
  auto queue = PoolQueue::create(pool, 3);
  std::mutex mutex;
  std::condition_variable changed;
  int inside = 0;
  bool open = false;
  auto blocker = [&] {
    std::unique_lock<std::mutex> lock(mutex);
    ++inside;
    changed.notify_all();
    changed.wait(lock, [&] { return open; });
  };
  queue->post(blocker);
  queue->post(blocker);
  ASSERT_TRUE(waitFor(mutex, changed, [&] { return inside == 2; }));
  // Both drainers are inside their jobs, none is free: a later post must
  // wake the third worker rather than wait behind them.
  bool ran = false;
  queue->post([&] {
    std::lock_guard<std::mutex> lock(mutex);
    ran = true;
    changed.notify_all();
  });
  EXPECT_TRUE(waitFor(mutex, changed, [&] { return ran; }));
  {
    std::lock_guard<std::mutex> lock(mutex);
    open = true;
  }
  changed.notify_all();
  pool.join();
}

TEST(PoolQueueConcurrentTest, AFloodOfShortJobsFromManyThreadsAllRun) {
  boost::asio::thread_pool pool(8);
  auto queue = PoolQueue::create(pool, 8);
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        queue->post([&] { ran.fetch_add(1, std::memory_order_relaxed); });
      }
    });
  }
  for (std::thread& poster : posters) {
    poster.join();
  }
  pool.join();
  EXPECT_EQ(ran.load(), 20000);
}

}  // namespace
}  // namespace jobd::runtime
