// A reload that changes `workers` gets a new worker pool; the pool it
// replaced is joined once its last job returns (issue 18, item 16: every
// such reload used to leave its old pool's threads behind until exit).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using testing::TestDatabase;
using testing::waitForValue;

int threadsOf(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) {
      return std::stoi(line.substr(8));
    }
  }
  return -1;
}

TEST(ReloadPoolTest, AReplacedWorkerPoolIsJoinedOnceItsJobsReturn) {
  TestDatabase db;
  auto config = [](int workers) {
    return "[jobd]\nworkers: " + std::to_string(workers) +
           "\npoll_interval: 1s\n[sleep]\n"
           "concurrency: 4\n";
  };
  Daemon daemon(db, config(8));
  ASSERT_TRUE(daemon.waitReady());
  // A job still running on the first pool when it is replaced.
  std::string running = db.scalar(R"(SELECT jobd.enqueue('sleep', '{"ms": 1500}'))");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + running, "1"), "1");
  const int before = threadsOf(daemon.process().pid());
  for (int round = 1; round <= 10; ++round) {
    std::ofstream(daemon.configPath()) << config(round % 2 == 1 ? 9 : 8);
    daemon.process().signal(SIGHUP);
    std::string reloaded = "RELOADED";
    // Each reload's own line: count them.
    for (int waited = 0; waited < 100; ++waited) {
      std::string log = daemon.log();
      std::size_t seen = 0;
      for (std::size_t at = log.find(reloaded); at != std::string::npos;
           at = log.find(reloaded, at + 1)) {
        ++seen;
      }
      if (seen >= static_cast<std::size_t>(round)) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + running, "2"), "2");
  std::string done = db.scalar(R"(SELECT jobd.enqueue('sleep', '{"ms": 1}'))");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + done, "2"), "2");
  // Ten pools of eight or nine threads were made; one is left (with the
  // one-thread difference of 9 against 8 workers).
  EXPECT_LE(threadsOf(daemon.process().pid()), before + 2) << "before: " << before;
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
