// Claiming ahead (`claim_ahead`, runtime/producer.hpp): a section with a
// backlog of short jobs claims past its free slots; a job claimed ahead
// that no slot takes within a second is given back, attempt kept, and the
// section claims nothing more ahead until its long job returns; a drain
// gives queued jobs back at once rather than running them. Real daemons,
// a real PostgreSQL, real signals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>

#include "daemon.hpp"
#include "store/job_store.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using testing::TestDatabase;
using testing::waitForValue;

constexpr const char* kConfig = R"(
[jobd]
workers: 4
[sleep]
concurrency: 1
claim_ahead: 3
)";

// 300 short jobs, one that sleeps `long_ms`, then 10 short ones; returns
// the long job's id.
std::string enqueueBacklog(TestDatabase& db, int long_ms) {
  db.scalar(
      "WITH a AS (INSERT INTO jobd.job (job_type, json_data) SELECT 'sleep', '{\"ms\": 0}' "
      "FROM generate_series(1, 300) RETURNING 1) SELECT count(*) FROM a");
  std::string id =
      db.scalar("INSERT INTO jobd.job (job_type, json_data) VALUES ('sleep', '{\"ms\": " +
                std::to_string(long_ms) + "}') RETURNING id");
  db.scalar(
      "WITH a AS (INSERT INTO jobd.job (job_type, json_data) SELECT 'sleep', '{\"ms\": 0}' "
      "FROM generate_series(1, 10) RETURNING 1) SELECT count(*) FROM a");
  return id;
}

// Once the long job runs and jobs after it were claimed ahead: RUNNING
// beside it, waiting for its slot.
void waitQueuedBehind(TestDatabase& db, const std::string& long_id) {
  ASSERT_EQ(waitForValue(db,
                         "SELECT (SELECT status FROM jobd.job WHERE id = " + long_id +
                             ") = 1 AND EXISTS (SELECT 1 FROM jobd.job WHERE status = 1 AND id > " +
                             long_id + ")",
                         "true", std::chrono::seconds(20)),
            "true");
}

TEST(ClaimAheadTest, JobsQueuedBehindALongJobAreGivenBackAfterASecondAndOnlyOnce) {
  TestDatabase db;
  std::string long_id = enqueueBacklog(db, 3000);
  Daemon daemon(db, kConfig);
  ASSERT_TRUE(daemon.waitReady());
  waitQueuedBehind(db, long_id);
  EXPECT_TRUE(
      daemon.waitForLog("JOBS_CLAIMED_AHEAD_RELEASED section=sleep", std::chrono::seconds(10)))
      << daemon.log();
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 2", "311"), "311");
  // Given back with their attempt: every job ran once, as attempt 1.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE attempt_count <> 1"), "0");
  std::string released = db.scalar(
      "SELECT count(*) FROM jobd.job_attempt WHERE outcome = 'released' AND job_id > " + long_id);
  // At most claim_ahead of them, once: after the hold the section claims
  // nothing ahead until the long job returns.
  EXPECT_THAT(std::stoi(released), ::testing::AllOf(::testing::Ge(1), ::testing::Le(3)));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt WHERE outcome = 'released'"),
            released);
  EXPECT_EQ(db.scalar("SELECT bool_and(a.error_message LIKE 'claimed ahead, and no slot freed%' "
                      "AND a.date_finished >= l.date_started + interval '900 ms' "
                      "AND a.date_finished < l.date_finished) "
                      "FROM jobd.job_attempt a, jobd.job l WHERE a.outcome = 'released' "
                      "AND l.id = " +
                      long_id),
            "t");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

TEST(ClaimAheadTest, ADrainGivesQueuedJobsBackAtOnceAndFinishesTheRunningOne) {
  TestDatabase db;
  std::string long_id = enqueueBacklog(db, 4000);
  Daemon daemon(db, kConfig);
  ASSERT_TRUE(daemon.waitReady());
  waitQueuedBehind(db, long_id);
  daemon.process().signal(SIGTERM);
  testing::ProcessResult result = daemon.process().wait();
  EXPECT_EQ(result.exit_code, 0) << result.err;
  // The long job ran to its end; what was queued behind it went back
  // WAITING with its attempt given back, released when the drain began
  // (well before the hold, and before the long job ended).
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + long_id), "2");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 1"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) > 0 FROM jobd.job_attempt WHERE outcome = 'released'"), "t");
  EXPECT_EQ(db.scalar("SELECT bool_and(a.error_message LIKE 'claimed ahead by a daemon that is "
                      "stopping%' AND a.date_finished < l.date_started + interval '900 ms' "
                      "AND j.status = 0 AND j.attempt_count = 0) "
                      "FROM jobd.job_attempt a JOIN jobd.job j ON j.id = a.job_id, jobd.job l "
                      "WHERE a.outcome = 'released' AND l.id = " +
                      long_id),
            "t");
}

TEST(ClaimAheadTest, AJobCancelledWhileQueuedNeverRuns) {
  TestDatabase db;
  std::string long_id = enqueueBacklog(db, 4000);
  Daemon daemon(db, kConfig);
  ASSERT_TRUE(daemon.waitReady());
  waitQueuedBehind(db, long_id);
  std::string queued =
      db.scalar("SELECT min(id) FROM jobd.job WHERE status = 1 AND id > " + long_id);
  // As `jobd cancel` does it (its CLI would take a while to start under
  // the sanitizers, near the queued job's one-second hold); then the
  // daemon renews at once, as `jobd pause --cancel-running` makes it, rather
  // than at its next renewal. The lease is lost, and the queued job is
  // dropped unrun.
  store::JobStore(*db.connect())
      .apply(std::stoll(queued), OperatorAction::kCancel, "cancelled by operator");
  db.scalar("SELECT pg_notify('jobd', 'jobd.leases')");
  // Usually the renewal says so first ("the lease is gone") and the job is
  // dropped from the queue; should the one-second hold come first, its
  // release is fenced out instead. Either way it never runs.
  daemon.waitForLog("JOB_LEASE_LOST id=" + queued + " attempt=1: the lease is gone",
                    std::chrono::seconds(5));
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 2", "310"), "310");
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + queued), "3");
  testing::ProcessResult stopped = daemon.stop();
  EXPECT_EQ(stopped.exit_code, 0);
  // A job that ran has its outcome recorded, JOB_FINISHED or (its lease
  // gone) the recorder's JOB_LEASE_LOST, with the sleep handler's outcome.
  EXPECT_THAT(stopped.err, ::testing::Not(::testing::ContainsRegex(
                               "id=" + queued + " type=sleep attempt=1 [^\n]*outcome=completed")));
}

// A section claiming ahead does not keep the pool's workers from another
// thread section: while one of them waits for a worker, nothing is
// claimed ahead, and the other's jobs run long before the backlog ends.
TEST(ClaimAheadTest, AnotherSectionOfThePoolIsNotShutOut) {
  TestDatabase db;
  db.scalar(
      "WITH a AS (INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, 100000) "
      "RETURNING 1) SELECT count(*) FROM a");
  // Half a second of work on two workers.
  db.scalar(
      "WITH a AS (INSERT INTO jobd.job (job_type, json_data) SELECT 'sleep', '{\"ms\": 5}' "
      "FROM generate_series(1, 200) RETURNING 1) SELECT count(*) FROM a");
  Daemon daemon(db, R"(
[jobd]
workers: 2
[noop]
concurrency: 2
claim_ahead: 200
[sleep]
concurrency: 2
)");
  ASSERT_TRUE(daemon.waitReady());
  EXPECT_EQ(
      waitForValue(db, "SELECT count(*) FROM jobd.job WHERE job_type = 'sleep' AND status = 2",
                   "200", std::chrono::seconds(120)),
      "200");
  EXPECT_EQ(db.scalar("SELECT count(*) > 10000 FROM jobd.job WHERE job_type = 'noop' AND "
                      "status = 0"),
            "t");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
