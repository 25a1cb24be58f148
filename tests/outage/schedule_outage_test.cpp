// Schedules across failures (issue 19): two daemons and a schedule that
// fires every second make exactly one job per tick for a minute (none
// missed, none doubled) while one daemon is SIGKILLed and started again
// and the database restarts. This test stops and restarts the cluster the
// tests run against: it runs alone, like database_outage_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <thread>

#include "cluster.hpp"
#include "daemon.hpp"

namespace jobd {
namespace {

using testing::clusterCtl;
using testing::ClusterGuard;
using testing::Daemon;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;

TEST(ScheduleOutageTest, TwoDaemonsMakeOneJobPerTickForAMinuteAcrossAKillAndARestart) {
  ClusterGuard guard;
  TestDatabase db;
  const std::string config = "[noop]\nconcurrency: 4\n";
  auto first = std::make_unique<Daemon>(db, config);
  Daemon second(db, config);
  ASSERT_TRUE(first->waitReady());
  ASSERT_TRUE(second.waitReady());
  // Ticks missed while no daemon could make them (the restart) are made
  // afterwards: catch_up = all.
  const std::string start = db.scalar(
      "WITH s AS (INSERT INTO jobd.schedule (name, job_type, spec, catch_up, catch_up_limit) "
      "VALUES ('every_second', 'noop', 'every 1s', 'all', 1000) RETURNING created) "
      "SELECT floor(extract(epoch FROM created))::bigint + 1 FROM s");
  const auto began = std::chrono::steady_clock::now();
  const std::string window =
      "fire_time BETWEEN to_timestamp(" + start + ") AND to_timestamp(" + start + " + 59)";

  std::this_thread::sleep_until(began + 15s);
  ASSERT_EQ(::kill(first->process().pid(), SIGKILL), 0);
  std::this_thread::sleep_until(began + 25s);
  first = std::make_unique<Daemon>(db, config);
  ASSERT_TRUE(first->waitReady());
  std::this_thread::sleep_until(began + 40s);
  clusterCtl("restart");
  ASSERT_TRUE(second.waitForLog("DATABASE_UP", 30s)) << second.log();

  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.schedule_tick WHERE " + window, "60", 60s),
            "60")
      << first->log() << second.log();
  db.scalar("UPDATE jobd.schedule SET paused = true RETURNING 1");
  // One job per tick of the minute, each a job of its own...
  EXPECT_EQ(db.scalar("SELECT count(job_id) || '/' || count(DISTINCT job_id) FROM "
                      "jobd.schedule_tick WHERE " +
                      window),
            "60/60");
  // ...and, counted from the jobs themselves (their requester names their
  // tick), one job for each second of the minute: none missed, none
  // doubled.
  EXPECT_EQ(db.scalar("SELECT count(*) || '/' || count(DISTINCT requester) FROM jobd.job "
                      "WHERE requester LIKE 'schedule every_second tick %' AND "
                      "substring(requester FROM 'tick (.*)$')::timestamptz BETWEEN "
                      "to_timestamp(" +
                      start + ") AND to_timestamp(" + start + " + 59)"),
            "60/60");
  // No daemon led: ticks were made by more than one (the killed one, its
  // successor, the other).
  EXPECT_GE(std::stoi(db.scalar("SELECT count(DISTINCT made_by) FROM jobd.schedule_tick")), 2);
  EXPECT_EQ(db.scalar("SELECT missed FROM jobd.schedule"), "0");
  testing::ProcessResult stopped = second.stop(20s);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
}

}  // namespace
}  // namespace jobd
