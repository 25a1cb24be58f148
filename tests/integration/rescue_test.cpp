#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;

constexpr const char* kConfig = R"(
[jobd]
poll_interval: 1s
rescue_interval: 1s
[sleep]
lease_duration: 2s
[work]
handler: sql
lease_duration: 2s
statement: SELECT slow_work($1, $2)
)";

constexpr const char* kWork = R"sql(
CREATE TABLE work_done (job_id bigint, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION slow_work(data jsonb, id bigint) RETURNS void LANGUAGE sql AS $$
  INSERT INTO work_done (job_id) VALUES (id);
  SELECT pg_sleep((data->>'seconds')::float8);
$$;
)sql";

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// kill -9 of a daemon in the middle of a job: a second daemon finishes it
// within lease_duration + rescue_interval + poll_interval (plus the job's
// own run and a margin), with a lease_expired attempt row and an OOPS.
TEST(RescueTest, KilledDaemonsJobIsFinishedElsewhere) {
  TestDatabase db;
  Daemon first(db, kConfig);
  ASSERT_TRUE(first.waitReady());
  std::string id = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 1500}', max_retries => 1)");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "1"), "1");
  std::string owner = db.scalar("SELECT lease_owner FROM jobd.job WHERE id = " + id);
  first.process().signal(SIGKILL);
  auto killed = std::chrono::steady_clock::now();

  Daemon second(db, kConfig);
  ASSERT_TRUE(second.waitReady());
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2",
                         std::chrono::seconds(20)),
            "2");
  double took = secondsSince(killed);
  std::printf("the killed daemon's job completed elsewhere %.2f s after kill -9\n", took);
  // lease 2 s + rescue 1 s + poll 1 s + the job's 1.5 s + 2 s margin
  EXPECT_LT(took, 7.5);
  EXPECT_EQ(db.scalar("SELECT concat_ws(',', attempt, daemon, outcome, error_type, "
                      "oops_id IS NOT NULL) FROM jobd.job_attempt WHERE job_id = " +
                      id),
            "1," + owner + ",lease_expired,LeaseExpired,t");
  EXPECT_EQ(db.scalar("SELECT type FROM jobd.oops WHERE job_id = " + id), "LeaseExpired");
  EXPECT_EQ(db.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + id), "2");
  EXPECT_NE(db.scalar("SELECT lease_owner FROM jobd.job WHERE id = " + id), owner);
  EXPECT_THAT(second.log(), HasSubstr("JOB_RESCUED requeued=1 failed=0"));
  EXPECT_EQ(second.stop().exit_code, 0);
}

// A queue of jobs behind a target that a race left with nothing in front
// (schema 12: a rolled-back jobd.acquire, a promotion that gave up on its
// lock) gets its head from the rescue pass, and its jobs run in order.
TEST(RescueTest, AStrandedQueueBehindATargetGetsItsHead) {
  TestDatabase db;
  std::string first = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 10}', target => 'T')");
  std::string second = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 10}', target => 'T')");
  ASSERT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + second), "t");
  // Both behind, as a race can leave them (the triggers off, so that the
  // change is not repaired at once).
  db.scalar(
      "SET session_replication_role = replica; UPDATE jobd.job SET behind = true WHERE id = " +
      first);
  Daemon daemon(db, kConfig);
  ASSERT_TRUE(daemon.waitReady());
  EXPECT_EQ(waitForValue(db, "SELECT string_agg(status::text, ',' ORDER BY id) FROM jobd.job",
                         "2,2", std::chrono::seconds(10)),
            "2,2");
  EXPECT_LT(db.scalar("SELECT date_started FROM jobd.job WHERE id = " + first),
            db.scalar("SELECT date_started FROM jobd.job WHERE id = " + second));
  EXPECT_THAT(daemon.log(), HasSubstr("QUEUE_HEAD_PROMOTED count=1"));
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// A job whose lease expires with no attempts left is FAILED by the rescuer.
TEST(RescueTest, NoAttemptsLeftFails) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.job (job_type, status, attempt_count, lease_owner, lease_expires, "
      "date_started) VALUES ('sleep', 1, 1, 'gone:1:0000', now() - interval '1 minute', "
      "now() - interval '2 minutes')");
  Daemon daemon(db, kConfig);
  ASSERT_TRUE(daemon.waitReady());
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job", "3", std::chrono::seconds(10)), "3");
  EXPECT_THAT(db.scalar("SELECT log FROM jobd.job"),
              ::testing::StartsWith("LeaseExpired: the lease of gone:1:0000 on attempt 1"));
  EXPECT_EQ(db.scalar("SELECT outcome FROM jobd.job_attempt"), "lease_expired");
  EXPECT_EQ(db.scalar("SELECT reporter FROM jobd.oops"), "JOBD-sleep");
  daemon.stop();
}

// A daemon stopped (SIGSTOP) past its lease: the job is rescued and run
// elsewhere; after SIGCONT the stale daemon's completion changes nothing and
// is logged; the job's database work is committed exactly once. With
// `runner = process` the child is not paused with its daemon: it finishes
// the work and waits for the daemon's answer before committing.
void pausedDaemonScenario(const std::string& runner) {
  TestDatabase db;
  db.scalar(kWork);
  std::string config = std::string(kConfig) + "runner: " + runner + "\n";
  Daemon paused(db, config);
  ASSERT_TRUE(paused.waitReady());
  std::string id = db.scalar("SELECT jobd.enqueue('work', '{\"seconds\": 1.5}', max_retries => 2)");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "1"), "1");
  paused.process().signal(SIGSTOP);

  Daemon other(db, config);
  ASSERT_TRUE(other.waitReady());
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2",
                         std::chrono::seconds(20)),
            "2");
  paused.process().signal(SIGCONT);
  EXPECT_TRUE(paused.waitForLog("JOB_LEASE_LOST id=" + id, std::chrono::seconds(20)))
      << paused.log();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM work_done"), "1");
  EXPECT_EQ(db.scalar("SELECT status || '/' || attempt_count FROM jobd.job WHERE id = " + id),
            "2/2");
  EXPECT_EQ(db.scalar("SELECT string_agg(outcome, ',') FROM jobd.job_attempt WHERE job_id = " + id),
            "lease_expired");
  EXPECT_EQ(paused.stop().exit_code, 0);
  EXPECT_EQ(other.stop().exit_code, 0);
}

TEST(RescueTest, PausedDaemonsLateCompletionChangesNothing) {
  pausedDaemonScenario("thread");
}

TEST(RescueTest, PausedDaemonsLateCompletionChangesNothingInAProcessRunner) {
  pausedDaemonScenario("process");
}

}  // namespace
}  // namespace jobd
