// jobd as a systemd service (SPEC §8), driven through a fake NOTIFY_SOCKET
// and real signals: READY before the first job, WATCHDOG from the io loop,
// RELOADING/READY around SIGHUP, STOPPING and a drain that releases what
// is still running at drain_timeout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <thread>

#include "daemon.hpp"
#include "notify_socket.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::NotifySocket;
using testing::TestDatabase;
using testing::waitForValue;

using Clock = std::chrono::steady_clock;

double secondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::map<std::string, std::string> withEnv(std::map<std::string, std::string> env,
                                           const std::map<std::string, std::string>& more) {
  env.insert(more.begin(), more.end());
  return env;
}

// The message sequence: READY (with nothing running yet, though a job was
// waiting), WATCHDOG every half WATCHDOG_USEC and none while the io loop is
// blocked, RELOADING with MONOTONIC_USEC then READY on SIGHUP, STOPPING on
// SIGTERM.
TEST(SystemdTest, NotifySequence) {
  TestDatabase db;
  std::string early = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 300}')");
  NotifySocket notify;
  Daemon daemon(db, "[sleep]\n", {},
                withEnv(notify.env(), {{"WATCHDOG_USEC", "1000000"}, {"JOBD_TEST_HOOKS", "1"}}));
  int ready = notify.waitFor("READY=1");
  ASSERT_GE(ready, 0) << daemon.log();
  EXPECT_THAT(notify.messages()[ready].text, HasSubstr("STATUS=running 0/"));
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + early, "2"), "2");

  // WATCHDOG about every 500 ms.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  std::vector<Clock::time_point> pings;
  for (const auto& m : notify.messages()) {
    if (m.text == "WATCHDOG=1") {
      pings.push_back(m.at);
    }
  }
  ASSERT_GE(pings.size(), 5U);
  for (std::size_t i = 1; i < pings.size(); ++i) {
    double gap = secondsBetween(pings[i - 1], pings[i]);
    EXPECT_GT(gap, 0.3);
    EXPECT_LT(gap, 0.9);
  }

  // A blocked io loop sends none.
  std::size_t before_block = notify.messages().size();
  daemon.process().signal(SIGUSR1);
  ASSERT_TRUE(daemon.waitForLog("TEST_HOOK blocking the io loop"));
  std::this_thread::sleep_for(std::chrono::seconds(4));
  std::vector<Clock::time_point> around;
  auto all = notify.messages();
  for (std::size_t i = before_block == 0 ? 0 : before_block - 1; i < all.size(); ++i) {
    if (all[i].text == "WATCHDOG=1") {
      around.push_back(all[i].at);
    }
  }
  double longest = 0;
  for (std::size_t i = 1; i < around.size(); ++i) {
    longest = std::max(longest, secondsBetween(around[i - 1], around[i]));
  }
  EXPECT_GT(longest, 2.5) << "WATCHDOG kept coming while the loop was blocked";

  std::size_t from = notify.messages().size();
  daemon.process().signal(SIGHUP);
  int reloading = notify.waitFor("RELOADING=1", from);
  ASSERT_GE(reloading, 0);
  EXPECT_THAT(notify.messages()[reloading].text, ::testing::ContainsRegex("MONOTONIC_USEC=[0-9]+"));
  int reloaded = notify.waitFor("READY=1", reloading + 1);
  ASSERT_GE(reloaded, 0);
  EXPECT_THAT(notify.messages()[reloaded].text, HasSubstr("STATUS=reloaded"));

  from = notify.messages().size();
  daemon.process().signal(SIGTERM);
  EXPECT_GE(notify.waitFor("STOPPING=1", from), 0);
  EXPECT_EQ(daemon.process().wait().exit_code, 0);
}

constexpr const char* kDrainConfig = R"(
[jobd]
drain_timeout: 2s
poll_interval: 500ms
[sleep]
concurrency: 4
[longproc]
handler: sleep
runner: process
)";

// SIGTERM: short jobs complete, long ones (a thread and a process runner)
// are released at drain_timeout with their attempt given back, nothing is
// claimed after STOPPING, and the daemon exits 0 within drain_timeout + 2 s.
TEST(SystemdTest, DrainCompletesShortJobsAndReleasesLongOnes) {
  TestDatabase db;
  NotifySocket notify;
  Daemon daemon(db, kDrainConfig, {}, notify.env());
  ASSERT_TRUE(daemon.waitReady());
  std::string short1 = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 800}')");
  std::string short2 = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 800}')");
  std::string long1 = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 60000}')");
  std::string long2 = db.scalar("SELECT jobd.enqueue('longproc', '{\"ms\": 60000}')");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 1", "4"), "4");
  auto stop_sent = Clock::now();
  daemon.process().signal(SIGTERM);
  ASSERT_GE(notify.waitFor("STOPPING=1"), 0);
  std::string late = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 1}')");
  testing::ProcessResult result = daemon.process().wait(std::chrono::seconds(10));
  double took = secondsBetween(stop_sent, Clock::now());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_LT(took, 2.0 + 2.0);
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + short1), "2");
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + short2), "2");
  for (const std::string& id : {long1, long2}) {
    SCOPED_TRACE("job " + id);
    EXPECT_EQ(db.scalar("SELECT status || '/' || attempt_count || '/' || (lease_expires IS NULL) "
                        "FROM jobd.job WHERE id = " +
                        id),
              "0/0/true");
    EXPECT_EQ(
        db.scalar("SELECT outcome || '/' || attempt FROM jobd.job_attempt WHERE job_id = " + id),
        "released/1");
  }
  EXPECT_EQ(db.scalar("SELECT status || '/' || attempt_count FROM jobd.job WHERE id = " + late),
            "0/0");
  EXPECT_THAT(result.err, HasSubstr("DRAIN_TIMEOUT released 2 jobs"));
  // A released job runs again, as attempt 1, on the next daemon.
  Daemon next(db, kDrainConfig);
  ASSERT_TRUE(next.waitReady());
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + late, "2"), "2");
  EXPECT_EQ(waitForValue(db, "SELECT attempt_count FROM jobd.job WHERE id = " + long1, "1"), "1");
  next.process().signal(SIGTERM);
  next.process().signal(SIGTERM);
  EXPECT_EQ(next.process().wait(std::chrono::seconds(10)).exit_code, 0);
}

// A second SIGTERM stops at once (within 3 s), releasing what runs.
TEST(SystemdTest, SecondSignalStopsAtOnce) {
  TestDatabase db;
  Daemon daemon(db, "[jobd]\ndrain_timeout: 60s\n[sleep]\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string id = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 60000}')");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "1"), "1");
  daemon.process().signal(SIGTERM);
  ASSERT_TRUE(daemon.waitForLog("DAEMON_DRAINING"));
  auto second = Clock::now();
  daemon.process().signal(SIGTERM);
  testing::ProcessResult result = daemon.process().wait(std::chrono::seconds(10));
  EXPECT_LT(secondsBetween(second, Clock::now()), 3.0);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("DAEMON_STOP_NOW"));
  EXPECT_EQ(db.scalar("SELECT status || '/' || attempt_count FROM jobd.job WHERE id = " + id),
            "0/0");
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// Reload under load: concurrency 4 -> 1 applies to the next claims; an
// invalid file keeps the old configuration; a section added by a reload
// is served and one removed stops claiming; no job is lost or run twice.
TEST(SystemdTest, ReloadUnderLoadConcurrently) {
  TestDatabase db;
  // A database handler: its COMPLETED mark commits with its work, so the
  // RUNNING count below is exact (no outcome batch in flight).
  const std::string work =
      "[jobd]\npoll_interval: 500ms\n[work]\nhandler: sql\nstatement: SELECT pg_sleep(0.1)\n";
  const std::string four = work + "concurrency: 4\n";
  const std::string one = work + "concurrency: 1\n";
  Daemon daemon(db, four);
  ASSERT_TRUE(daemon.waitReady());
  db.scalar("SELECT jobd.enqueue('work') FROM generate_series(1, 60)");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 1", "4"), "4");

  writeFile(daemon.configPath(), one + "[extra]\nhandler: noop\n");
  daemon.process().signal(SIGHUP);
  ASSERT_TRUE(daemon.waitForLog("RELOADED"));
  // Jobs claimed before the reload finish within 100 ms; after that, never
  // more than one at a time.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int most = 0;
  for (int i = 0; i < 40; ++i) {
    most = std::max(most,
                    std::stoi(db.scalar(
                        "SELECT count(*) FROM jobd.job WHERE status = 1 AND job_type = 'work'")));
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(most, 1);
  std::string extra = db.scalar("SELECT jobd.enqueue('extra')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + extra, "2"), "2");

  writeFile(daemon.configPath(), one + "[extra]\nhandler: noop\nconcurrency: lots\n");
  daemon.process().signal(SIGHUP);
  ASSERT_TRUE(daemon.waitForLog("RELOAD_KEPT_OLD_CONFIGURATION"));
  EXPECT_THAT(daemon.log(), HasSubstr("concurrency"));

  writeFile(daemon.configPath(), four);
  daemon.process().signal(SIGHUP);
  ASSERT_TRUE(daemon.waitForLog("RELOADED 1 sections"));
  std::string orphan = db.scalar("SELECT jobd.enqueue('extra')");
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE job_type = 'work' AND status = 2",
                         "60", std::chrono::seconds(60)),
            "60");
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + orphan), "0");
  EXPECT_EQ(db.scalar("SELECT max(attempt_count) FROM jobd.job"), "1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt"), "0");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
