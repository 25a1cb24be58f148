// `jobd pause` and `jobd unpause` (schema 14, issue 19) against two
// serving daemons fed a job every 10 ms: no claim of the paused type
// starts later than 100 ms after the pause's commit, on either daemon;
// `unpause` wakes them at once (the poll is a minute); a pause with an end
// expires by itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
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
  std::this_thread::sleep_for(1s);
  ASSERT_NE(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 2"), "0");

  ProcessResult paused = jobd({"pause", "noop", "--reason", "deploy"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(paused.out, "paused noop\n");
  // The commit came before the command returned.
  const std::string committed = db.scalar("SELECT now()");
  ProcessResult status = jobd({"status"});
  EXPECT_THAT(status.out, ::testing::HasSubstr("paused:\n  noop by "));
  EXPECT_THAT(status.out, ::testing::HasSubstr(", until unpaused: deploy\n"));
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE date_started > '" + committed +
                      "'::timestamptz + interval '100 ms'"),
            "0");
  EXPECT_GT(std::stoi(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0")), 100);

  ProcessResult unpaused = jobd({"unpause", "noop"});
  ASSERT_EQ(unpaused.exit_code, 0) << unpaused.err;
  const std::string resumed = db.scalar("SELECT now()");
  feeder.stop();
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status <> 2", "0", 20s), "0");
  // Woken by the unpause's NOTIFY, not by the minute's poll.
  EXPECT_EQ(db.scalar("SELECT min(date_started) < '" + resumed +
                      "'::timestamptz + interval '1 second' FROM jobd.job "
                      "WHERE date_started > '" +
                      committed + "'::timestamptz + interval '100 ms'"),
            "t");
  ProcessResult again = jobd({"unpause", "noop"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_EQ(again.err, "jobd: unpause: noop is not paused\n");

  // A pause with an end: jobs enqueued meanwhile start at its end, and no
  // later than a second after it, with nobody unpausing.
  const std::string before_timed = db.scalar("SELECT now()");
  ProcessResult timed = jobd({"pause", "noop", "--until", "2s"});
  ASSERT_EQ(timed.exit_code, 0) << timed.err;
  const std::string until = db.scalar("SELECT until FROM jobd.paused");
  db.scalar("SELECT count(jobd.enqueue('noop')) FROM generate_series(1, 5)");
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status <> 2", "0", 10s), "0");
  EXPECT_EQ(db.scalar("SELECT bool_and(date_started >= '" + until +
                      "'::timestamptz AND date_started < '" + until +
                      "'::timestamptz + interval '1 second') FROM jobd.job "
                      "WHERE date_created > '" +
                      before_timed + "'::timestamptz"),
            "t");
  EXPECT_EQ(first.stop().exit_code, 0);
  EXPECT_EQ(second.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
