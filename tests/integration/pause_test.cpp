// `jobd pause` and `jobd unpause` (schema 14, issue 19) against two
// serving daemons fed a job every 10 ms: no claim of the paused type
// starts later than 100 ms after the pause's commit, on either daemon;
// `unpause` wakes them at once (the poll is a minute); a pause with an end
// expires by itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "daemon.hpp"
#include "process.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using testing::ProcessResult;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;

// Enqueues a noop job every 10 ms until stopped.
class Feeder {
 public:
  explicit Feeder(const TestDatabase& db)
      : thread_([this, &db] {
          auto conn = db.connect();
          while (!stop_) {
            pqxx::nontransaction(*conn).exec("SELECT jobd.enqueue('noop')");
            std::this_thread::sleep_for(10ms);
          }
        }) {}
  ~Feeder() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(PauseCommandTest, APauseStopsEveryDaemonsClaimsWithin100Ms) {
  TestDatabase db;
  const std::string config = "[jobd]\npoll_interval: 60s\n[noop]\nconcurrency: 4\n";
  const std::string config_path = ::testing::TempDir() + "jobd_pause_" + db.name() + ".conf";
  std::ofstream(config_path) << config;
  auto jobd = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--database", db.conninfo(), "--config", config_path});
    return testing::runJobd(args);
  };
  Daemon first(db, config);
  Daemon second(db, config);
  ASSERT_TRUE(first.waitReady());
  ASSERT_TRUE(second.waitReady());
  Feeder feeder(db);
  ASSERT_EQ(waitForValue(db, "SELECT count(*) >= 20 FROM jobd.job WHERE status = 2", "true", 20s),
            "true");

  ProcessResult paused = jobd({"pause", "noop", "--reason", "deploy"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(paused.out, "paused noop\n");
  ProcessResult status = jobd({"status"});
  EXPECT_THAT(status.out, ::testing::HasSubstr("paused:\n  noop by "));
  EXPECT_THAT(status.out, ::testing::HasSubstr(", until unpaused: deploy\n"));
  std::this_thread::sleep_for(1500ms);
  // paused_at is the pause's transaction's start: at or before its commit.
  // The last job started, by either daemon, against it (printed: the
  // measure of issue 19's "within 100 ms").
  const std::string last_start_ms = db.scalar(
      "SELECT round(extract(epoch FROM max(j.date_started) - p.paused_at) * 1000) "
      "FROM jobd.job AS j, jobd.paused AS p GROUP BY p.paused_at");
  std::cout << "the last claim started " << last_start_ms << " ms after the pause began\n";
  EXPECT_LE(std::stod(last_start_ms), 100);
  EXPECT_GT(std::stoi(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0")), 20);

  // The daemons fall asleep with nothing new to claim; unpause's NOTIFY
  // wakes them (their poll is a minute away).
  feeder.stop();
  std::this_thread::sleep_for(300ms);
  ProcessResult unpaused = jobd({"unpause", "noop"});
  ASSERT_EQ(unpaused.exit_code, 0) << unpaused.err;
  const std::string resumed = db.scalar("SELECT now()");
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status <> 2", "0", 20s), "0");
  EXPECT_EQ(db.scalar("SELECT max(date_started) < '" + resumed +
                      "'::timestamptz + interval '1 second' FROM jobd.job"),
            "t");
  ProcessResult again = jobd({"unpause", "noop"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_EQ(again.err, "jobd: unpause: noop is not paused\n");

  // A pause without an end, jobs waiting and the daemons asleep; then a
  // pause that replaces it with an end a second away. Nobody unpauses:
  // the jobs start at that end, within a second of it.
  ASSERT_EQ(jobd({"pause", "noop"}).exit_code, 0);
  const std::string before_timed = db.scalar("SELECT now()");
  db.scalar("SELECT count(jobd.enqueue('noop')) FROM generate_series(1, 5)");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0"), "5");
  ProcessResult timed = jobd({"pause", "noop", "--until", "1s"});
  ASSERT_EQ(timed.exit_code, 0) << timed.err;
  EXPECT_EQ(timed.out, "paused noop (replacing the pause in place)\n");
  const std::string until = db.scalar("SELECT until FROM jobd.paused");
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status <> 2", "0", 10s), "0");
  EXPECT_EQ(db.scalar("SELECT bool_and(date_started >= '" + until +
                      "'::timestamptz AND date_started < '" + until +
                      "'::timestamptz + interval '1 second') FROM jobd.job "
                      "WHERE date_created > '" +
                      before_timed + "'::timestamptz"),
            "t");
  ProcessResult bad = jobd({"pause", "noop", "--until", "2001-01-01T00:00:00Z"});
  EXPECT_EQ(bad.exit_code, 64);
  EXPECT_THAT(bad.err, ::testing::HasSubstr("is not in the future"));
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  EXPECT_EQ(first.stop().exit_code, 0);
  EXPECT_EQ(second.stop().exit_code, 0);
}

// --cancel-running (schema 17): the jobs running when the pause commits
// are released (WAITING, their attempt given back, an attempt row
// `released` / `Paused`), and the daemon running them stops them at once
// (a renewal woken by the NOTIFY, not the next one, which is 10 s away);
// they run again, from the start, when the pause ends.
TEST(PauseCommandTest, CancelRunningStopsTheJobsAndTheyRunAfterTheUnpause) {
  TestDatabase db;
  // Renewals every 100 s: only the NOTIFY's renewal can stop the jobs in
  // the seconds this test waits.
  const std::string config = "[sleep]\nconcurrency: 2\nlease_duration: 300s\n";
  const std::string config_path = ::testing::TempDir() + "jobd_cancel_" + db.name() + ".conf";
  std::ofstream(config_path) << config;
  auto jobd = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--database", db.conninfo(), "--config", config_path});
    return testing::runJobd(args);
  };
  Daemon daemon(db, config);
  ASSERT_TRUE(daemon.waitReady());
  db.scalar(R"(SELECT count(jobd.enqueue('sleep', '{"ms": 20000}')) FROM generate_series(1, 2))");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 1", "2", 10s), "2");
  const auto paused_at = std::chrono::steady_clock::now();
  ProcessResult paused = jobd({"pause", "sleep", "--cancel-running", "--reason", "deploy"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(paused.out, "paused sleep; its running jobs are stopped and wait for the end\n");
  // Their attempt is not given back: the next claim's attempt 2 fences out
  // anything the stopped run might still write.
  EXPECT_EQ(db.scalar("SELECT string_agg(status || ':' || attempt_count, ' ') FROM jobd.job"),
            "0:1 0:1");
  EXPECT_EQ(db.scalar("SELECT string_agg(outcome || ':' || error_type || ':' || error_message, "
                      "' ') FROM jobd.job_attempt"),
            "released:Paused:stopped by a pause with cancel_running: deploy "
            "released:Paused:stopped by a pause with cancel_running: deploy");
  // Both stopped here, well before the 20 s sleeps or the next renewal
  // (a third of the lease: 100 s).
  auto lost = [&] {
    std::string log = daemon.log();
    std::size_t n = 0;
    const std::string needle = "the lease is gone";  // LeaseKeeper's JOB_LEASE_LOST
    for (std::size_t at = log.find(needle); at != std::string::npos;
         at = log.find(needle, at + 1)) {
      ++n;
    }
    return n;
  };
  while (lost() < 2 && std::chrono::steady_clock::now() - paused_at < 5s) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(lost(), 2U) << daemon.log();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0"), "2");
  ASSERT_EQ(jobd({"unpause", "sleep"}).exit_code, 0);
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 1", "2", 10s), "2");
  EXPECT_EQ(db.scalar("SELECT string_agg(attempt_count::text, ' ') FROM jobd.job"), "2 2");
  // Nothing to stop: no NOTIFY, no renewal anywhere.
  ASSERT_EQ(jobd({"pause", "noop", "--cancel-running"}).exit_code, 0);
}

}  // namespace
}  // namespace jobd
