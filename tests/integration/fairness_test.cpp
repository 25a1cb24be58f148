// Fairness (schema 21, issue 21) run by real daemons: the keys of a fair
// section take its slots in turn, so nine keys' single jobs enqueued behind
// another key's 2,000 run long before that backlog ends; `jobd status`
// says how the section claims; a job past `priority_ageing` starts first;
// and a reload without `fair` gives the parked jobs back.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "daemon.hpp"

namespace jobd {
namespace {

using namespace std::chrono_literals;
using testing::Daemon;
using ::testing::HasSubstr;
using testing::ProcessResult;
using testing::TestDatabase;
using testing::waitForValue;

constexpr const char* kFair = R"(
[jobd]
poll_interval: 1s
[sleep]
concurrency: 4
limit_key: data:who
fair: true
priority_ageing: 1h
)";

TEST(FairRunTest, NineKeysJobsRunLongBeforeAnotherKeysBacklogEnds) {
  TestDatabase db;
  Daemon first(db, kFair);
  Daemon second(db, kFair);
  ASSERT_TRUE(first.waitReady());
  ASSERT_TRUE(second.waitReady());
  db.scalar(
      "SELECT count(jobd.enqueue('sleep', '{\"ms\": 5, \"who\": \"hot\"}')) "
      "FROM generate_series(1, 2000)");
  db.scalar(
      "SELECT count(jobd.enqueue('sleep', jsonb_build_object('ms', 5, 'who', 'k' || i))) "
      "FROM generate_series(1, 9) AS i");
  ASSERT_EQ(waitForValue(db,
                         "SELECT count(*) FROM jobd.job WHERE status = 2 "
                         "AND json_data ->> 'who' <> 'hot'",
                         "9", 60s),
            "9")
      << first.log();
  // In claim order the nine would wait for all 2,000.
  std::string hot_done = db.scalar(
      "SELECT count(*) FROM jobd.job WHERE status = 2 AND json_data ->> 'who' = 'hot' "
      "AND date_finished <= (SELECT max(date_finished) FROM jobd.job "
      "WHERE json_data ->> 'who' <> 'hot')");
  std::printf("backlog jobs finished before the nine: %s of 2000\n", hot_done.c_str());
  EXPECT_LT(std::stoi(hot_done), 400);
  ProcessResult status =
      testing::runJobd({"--database", db.conninfo(), "--config", first.configPath(), "status"});
  EXPECT_THAT(status.out,
              HasSubstr("limits:\n  sleep by data:who: the keys take turns; jobs waiting 1h go "
                        "first\n"));
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 2", "2009", 120s),
            "2009")
      << first.log();
  // Parked and started later: one attempt each, nothing logged.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE attempt_count <> 1 OR log IS NOT NULL"),
            "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "0");
  EXPECT_EQ(first.stop().exit_code, 0);
  EXPECT_EQ(second.stop().exit_code, 0);
}

// priority_ageing reaches the claim: a priority-10 job enqueued an hour ago
// starts before twenty priority-0 jobs.
TEST(FairRunTest, AJobPastItsAgeingStartsFirst) {
  TestDatabase db;
  db.scalar(
      "SELECT count(jobd.enqueue('sleep', '{\"ms\": 1}', priority => 0)) "
      "FROM generate_series(1, 20)");
  std::string old =
      db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 1}', priority => 10, target => 'old')");
  db.scalar("UPDATE jobd.job SET date_created = now() - interval '1 hour' WHERE id = " + old);
  Daemon daemon(db, "[jobd]\npoll_interval: 1s\n[sleep]\nconcurrency: 1\npriority_ageing: 30m\n");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 2", "21", 30s), "21")
      << daemon.log();
  EXPECT_EQ(db.scalar("SELECT target FROM jobd.job ORDER BY date_started LIMIT 1"), "old");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

TEST(FairRunTest, AReloadWithoutFairGivesTheParkedJobsBack) {
  TestDatabase db;
  Daemon daemon(db,
                "[jobd]\npoll_interval: 1s\n[sleep]\nconcurrency: 1\nlimit_key: data:who\n"
                "fair: true\n");
  ASSERT_TRUE(daemon.waitReady());
  db.scalar(
      "SELECT count(jobd.enqueue('sleep', '{\"ms\": 1000, \"who\": \"a\"}')) "
      "FROM generate_series(1, 10)");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) > 0 FROM jobd.job_throttled", "true", 10s), "true");
  ProcessResult status =
      testing::runJobd({"--database", db.conninfo(), "--config", daemon.configPath(), "status"});
  EXPECT_THAT(status.out, HasSubstr(" parked, the first in line since "));
  EXPECT_THAT(status.out, HasSubstr(", each in its key's turn\n"));
  std::ofstream(daemon.configPath()) << "[jobd]\npoll_interval: 1s\n[sleep]\nconcurrency: 1\n";
  ::kill(daemon.process().pid(), SIGHUP);
  EXPECT_TRUE(daemon.waitForLog("THROTTLED_RELEASED job_type=sleep"));
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 2", "10", 30s), "10")
      << daemon.log();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE attempt_count <> 1"), "0");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
