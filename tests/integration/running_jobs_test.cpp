// The daemon's ledger of running jobs, against a real PostgreSQL: a job is
// tracked by (id, attempt), its lease is renewed whatever else the
// database thread is doing, and the daemon's own connection trouble never
// costs a job an attempt.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "daemon.hpp"
#include "process.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;

// The first attempt sleeps 1.5 s; every later one 6 s and leaves a row in
// work_done, which commits only with the COMPLETED mark.
constexpr const char* kAttemptWork = R"sql(
CREATE TABLE work_done (job_id bigint, attempt integer);
CREATE FUNCTION attempt_work(id bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  attempt integer := (SELECT attempt_count FROM jobd.job WHERE jobd.job.id = attempt_work.id);
BEGIN
  INSERT INTO work_done VALUES (id, attempt);
  PERFORM pg_sleep(CASE WHEN attempt = 1 THEN 1.5 ELSE 6 END);
END $$;
)sql";

// Defect 1 of issue 17: an operator's suspend and resume within one
// renewal interval gave the job to the same daemon again while its first
// attempt still ran. Keyed by id, the first attempt was never stopped, and
// its end dropped the second attempt's lease, which expired: the job was
// rescued and ran again and again. Keyed by (id, attempt), the first
// attempt is stopped at the second claim and the second completes. The
// test writes what `jobd suspend` and `jobd resume` write, in one
// transaction, so that no renewal can come between them.
TEST(RunningJobsTest, SuspendAndResumeWhileRunningStopsTheEarlierAttempt) {
  TestDatabase db;
  db.scalar(kAttemptWork);
  Daemon daemon(db, R"(
[jobd]
poll_interval: 1s
rescue_interval: 1s
[work]
handler: sql
concurrency: 2
lease_duration: 3s
statement: SELECT attempt_work($2)
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string id = db.scalar("SELECT jobd.enqueue('work', max_retries => 5)");
  ASSERT_EQ(waitForValue(db,
                         "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND wait_event = 'PgSleep' "
                         "AND application_name = 'jobd job'",
                         "1", 20s),
            "1");
  db.scalar(
      "INSERT INTO jobd.job_attempt (job_id, attempt, daemon, date_started, outcome, error_type, "
      "error_message) SELECT id, attempt_count, lease_owner, date_started, 'suspended', "
      "'Suspended', 'suspended by operator' FROM jobd.job WHERE id = " +
      id +
      ";"
      "UPDATE jobd.job SET status = 4, lease_expires = NULL WHERE id = " +
      id +
      ";"
      "UPDATE jobd.job SET status = 0, lease_expires = NULL WHERE id = " +
      id);

  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2", 30s), "2")
      << daemon.log();
  EXPECT_EQ(db.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + id), "2");
  EXPECT_EQ(db.scalar("SELECT string_agg(attempt || ':' || outcome, ',' ORDER BY attempt) "
                      "FROM jobd.job_attempt WHERE job_id = " +
                      id),
            "1:suspended");
  EXPECT_EQ(db.scalar("SELECT string_agg(attempt::text, ',') FROM work_done"), "2");
  EXPECT_THAT(daemon.log(), HasSubstr("JOB_LEASE_LOST id=" + id +
                                      " attempt=1: the database gave this job to this daemon "
                                      "again (attempt 2); stopping the earlier attempt"));
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// An operator's cancel or suspend of a RUNNING job tells its daemon at
// once (NOTIFY jobd, 'jobd.leases'), not at the next renewal: with a lease
// of 120 s, renewals come every 40 s, and each job must be stopped within
// 3 s of the command.
TEST(RunningJobsTest, CancelAndSuspendStopARunningJobWithinARoundTrip) {
  TestDatabase db;
  Daemon daemon(db, R"(
[jobd]
poll_interval: 1s
[work]
handler: sql
concurrency: 2
lease_duration: 120s
timeout: 300s
statement: SELECT pg_sleep(60)
)");
  ASSERT_TRUE(daemon.waitReady());
  for (const char* command : {"cancel", "suspend"}) {
    std::string id = db.scalar("SELECT jobd.enqueue('work')");
    ASSERT_EQ(
        waitForValue(db,
                     "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND wait_event = 'PgSleep' "
                     "AND application_name = 'jobd job'",
                     "1", 20s),
        "1")
        << daemon.log();
    auto from = std::chrono::steady_clock::now();
    testing::ProcessResult r =
        testing::runJobd({"--database", db.conninfo(), "--config", "/dev/null", command, id});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(daemon.waitForLog("JOB_LEASE_LOST id=" + id, 3s)) << command << "\n"
                                                                  << daemon.log();
    // The query is cancelled: the job's session no longer sleeps.
    EXPECT_EQ(
        waitForValue(db,
                     "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND wait_event = 'PgSleep' "
                     "AND application_name = 'jobd job'",
                     "0", 5s),
        "0");
    std::printf("%s: the daemon stopped the job %.2f s after the command\n", command,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count());
    EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + id),
              std::string(command) == "cancel" ? "3" : "4");
  }
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// Defect 2 of issue 17: renewals waited on the database thread behind
// other work (here a heartbeat blocked on a lock for at least 8 s, longer
// than the 6 s lease), so leases expired under running jobs. Renewals now have a
// connection of their own: the lease never runs out while the job runs.
TEST(RunningJobsTest, ALeaseIsRenewedWhileOtherDatabaseWorkIsBlocked) {
  TestDatabase db;
  Daemon daemon(db, R"(
[jobd]
poll_interval: 1s
rescue_interval: 1s
[sleep]
lease_duration: 6s
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string id = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 17000}')");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "1", 20s), "1");

  // The heartbeat (every 5 s) writes jobd.daemon: hold that table for 13 s,
  // so that the daemon's main database thread waits on it for at least 8,
  // longer than the 6 s lease.
  auto blocker = db.connect();
  pqxx::work lock(*blocker);
  lock.exec("LOCK TABLE jobd.daemon IN ACCESS EXCLUSIVE MODE");
  auto conn = db.connect();
  auto until = std::chrono::steady_clock::now() + 13s;
  int samples = 0;
  int expired = 0;
  while (std::chrono::steady_clock::now() < until) {
    pqxx::nontransaction read(*conn);
    pqxx::row row =
        read.exec1("SELECT status, lease_expires > now() FROM jobd.job WHERE id = " + id);
    ++samples;
    if (row[0].as<int>() != 1 || !row[1].as<bool>()) {
      ++expired;
    }
    std::this_thread::sleep_for(100ms);  // a sampling rate, not a wait for an event
  }
  lock.abort();
  EXPECT_GT(samples, 50);
  EXPECT_EQ(expired, 0) << daemon.log();
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2", 20s), "2");
  EXPECT_EQ(db.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + id), "1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt WHERE job_id = " + id), "0");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// Defect 3 of issue 17: a worker's cached job connection that died between
// jobs (a restarted database, a terminated backend) failed at BEGIN, and
// the next job was charged a retry (with max_retries 0: FAILED, an OOPS
// and a notice). The connection is replaced and the job runs once.
TEST(RunningJobsTest, ADeadCachedJobConnectionCostsTheNextJobNothing) {
  TestDatabase db;
  db.scalar("CREATE TABLE done (job_id bigint)");
  Daemon daemon(db, R"(
[jobd]
workers: 1
poll_interval: 1s
[work]
handler: sql
statement: INSERT INTO done VALUES ($2)
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string first = db.scalar("SELECT jobd.enqueue('work')");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + first, "2", 20s), "2");
  ASSERT_EQ(db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE application_name = 'jobd job' AND datname = current_database()"),
            "1");

  std::string second = db.scalar("SELECT jobd.enqueue('work')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + second, "2", 20s), "2")
      << daemon.log();
  EXPECT_EQ(db.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + second), "1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM done"), "2");
  EXPECT_THAT(daemon.log(), HasSubstr("JOB_CONNECTION_REOPENED"));
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// Defect 5 of issue 17 (the wake-up): a job waiting on a target held by a
// job of another type, served by another daemon, waited for its daemon's
// next poll (here a minute) once the target was free. The end of the
// holding job now notifies the waiting job's type.
TEST(RunningJobsTest, AFreedTargetWakesTheDaemonsOfTheJobsWaitingOnIt) {
  TestDatabase db;
  Daemon holder(db, R"(
[jobd]
poll_interval: 60s
[hold]
handler: sleep
)");
  Daemon waiter(db, R"(
[jobd]
poll_interval: 60s
[after]
handler: noop
)");
  ASSERT_TRUE(holder.waitReady());
  ASSERT_TRUE(waiter.waitReady());
  std::string held = db.scalar("SELECT jobd.enqueue('hold', '{\"ms\": 1000}', target => 'repo:1')");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + held, "1", 20s), "1");
  std::string after = db.scalar("SELECT jobd.enqueue('after', target => 'repo:1')");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + held, "2", 20s), "2");
  auto freed = std::chrono::steady_clock::now();
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + after, "2", 15s), "2")
      << waiter.log();
  EXPECT_LT(std::chrono::steady_clock::now() - freed, 5s);
  EXPECT_EQ(holder.stop().exit_code, 0);
  EXPECT_EQ(waiter.stop().exit_code, 0);
}

// Defect 5 of issue 17 (idle slots): the claim keeps one job per target
// after its LIMIT, so four ready jobs of one target ahead of three
// untargeted ones filled a claim of four with one job, and the three waited
// until the targeted job ended. A claim that narrowed claims again at once.
TEST(RunningJobsTest, JobsOfOneTargetDoNotLeaveSlotsIdle) {
  TestDatabase db;
  Daemon daemon(db, R"(
[jobd]
poll_interval: 60s
[sleep]
concurrency: 4
)");
  ASSERT_TRUE(daemon.waitReady());
  // One transaction (scalar's), so that one claim sees all seven.
  std::string first = db.scalar(R"sql(
    SELECT jobd.enqueue('sleep', '{"ms": 3000}', target => 'repo:1') FROM generate_series(1, 4);
    SELECT jobd.enqueue('sleep', '{"ms": 3000}') FROM generate_series(1, 3);
    SELECT min(id) FROM jobd.job WHERE target = 'repo:1';
  )sql");
  EXPECT_EQ(waitForValue(db,
                         "SELECT count(*) FROM jobd.job WHERE target IS NULL AND status = 1 "
                         "AND (SELECT status FROM jobd.job WHERE id = " +
                             first + ") = 1",
                         "3", 10s),
            "3")
      << daemon.log();
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// Issue 18, item 16: a claim whose reply was lost with the connection may
// have committed, leaving a job RUNNING under this daemon's lease that
// nothing here runs; it used to wait for its lease to expire and be rescued
// as a failed attempt (FAILED with max_retries 0). After the claims
// connection comes back the daemon releases such a job, attempt given back.
// The test makes one by hand: a RUNNING row under the daemon's owner name
// with a five-minute lease, then the daemon's claims backend is terminated.
TEST(RunningJobsTest, AJobClaimedByALostReplyIsReleasedAfterTheReconnect) {
  TestDatabase db;
  Daemon daemon(db, R"(
[jobd]
poll_interval: 1s
[noop]
)");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.daemon", "1", 20s), "1");
  std::string owner = db.scalar("SELECT owner FROM jobd.daemon");
  std::string id = db.scalar(
      "INSERT INTO jobd.job (job_type, status, attempt_count, lease_owner, lease_expires, "
      "date_started) VALUES ('noop', 1, 1, '" +
      owner + "', now() + interval '5 minutes', now()) RETURNING id");
  ASSERT_EQ(db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE application_name = 'jobd serve' AND datname = current_database()"),
            "1");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2", 20s), "2")
      << daemon.log();
  EXPECT_EQ(db.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + id), "1");
  EXPECT_EQ(db.scalar("SELECT string_agg(attempt || ':' || outcome, ',') FROM jobd.job_attempt "
                      "WHERE job_id = " +
                      id),
            "1:released");
  EXPECT_THAT(daemon.log(), HasSubstr("JOB_ORPHAN_RELEASED id=" + id + " attempt=1"));
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
