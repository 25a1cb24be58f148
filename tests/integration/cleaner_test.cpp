// keep_finished and keep_oops (SPEC §7, docs/schema.md "Retention"): the
// cleaner of `jobd serve` deletes finished jobs past their section's
// keep_finished with their attempt rows, keeps their OOPS rows until
// keep_oops, leaves every other row alone, cleans one daemon at a time, and
// never holds back an enqueue or a claim while it works.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "daemon.hpp"
#include "http_client.hpp"

namespace jobd {
namespace {

using testing::baseUrl;
using testing::Daemon;
using ::testing::HasSubstr;
using testing::httpGet;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;

// Finished `type` jobs finished `age` ago, each with one attempt row and
// one OOPS row naming it.
void insertFinished(const TestDatabase& db, const std::string& type, int count,
                    const std::string& age, int status = 2) {
  db.scalar(
      "WITH j AS (INSERT INTO jobd.job (job_type, status, attempt_count, date_started, "
      "date_finished) SELECT '" +
      type + "', " + std::to_string(status) + ", 1, now() - interval '" + age +
      "', now() - interval '" + age + "' FROM generate_series(1, " + std::to_string(count) +
      ") RETURNING id), a AS (INSERT INTO jobd.job_attempt (job_id, attempt, outcome, "
      "date_finished) SELECT id, 1, 'failed', now() - interval '" +
      age +
      "' FROM j) INSERT INTO jobd.oops (id, time, reporter, job_id, job_type, type) SELECT "
      "'OOPS-' || md5(random()::text), now() - interval '1 hour', 'test', id, '" +
      type + "', 'Boom' FROM j RETURNING 1");
}

TEST(CleanerTest, FinishedJobsPastKeepFinishedGoWithTheirAttemptsAndNothingElseDoes) {
  TestDatabase db;
  insertFinished(db, "noop", 30, "3 days");     // past keep_finished: deleted
  insertFinished(db, "fail", 20, "3 days", 3);  // FAILED, past its 2d: deleted
  insertFinished(db, "noop", 5, "1 hour");      // finished recently: kept
  insertFinished(db, "unserved", 5, "3 days");  // no section serves it: kept
  db.scalar(
      "INSERT INTO jobd.job (job_type, date_created, scheduled_start) VALUES "
      "('noop', now() - interval '3 days', now() + interval '1 day') RETURNING 1");
  db.scalar(
      "INSERT INTO jobd.oops (id, time, reporter, type) VALUES "
      "('OOPS-old1', now() - interval '40 days', 'test', 'Old'), "
      "('OOPS-old2', now() - interval '11 days', 'test', 'Old'), "
      "('OOPS-new', now() - interval '9 days', 'test', 'New') RETURNING 1");

  Daemon daemon(db, R"([jobd]
clean_interval: 200ms
keep_oops: 10d
metrics_listen: 127.0.0.1:0
[noop]
keep_finished: 1d
[fail]
keep_finished: 2d
)");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE job_type IN ('noop', 'fail')",
                         "6", 30s),
            "6")
      << daemon.log();
  ASSERT_TRUE(daemon.waitForLog("JOBS_PRUNED jobs=50 oopses=2")) << daemon.log();

  // The recent noop jobs and the far-future WAITING one stay, and so does
  // the type nobody serves; attempts went with their jobs.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'noop' AND status = 2"), "5");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0"), "1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'unserved'"), "5");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt"), "10");
  // Every OOPS of a deleted job stays, naming no job now; only those past
  // keep_oops went.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops WHERE job_id IS NULL AND type = 'Boom'"),
            "50");
  EXPECT_EQ(db.scalar("SELECT string_agg(id, ',' ORDER BY id) FROM jobd.oops WHERE type <> "
                      "'Boom'"),
            "OOPS-new");

  std::string metrics = httpGet(baseUrl(daemon.process()) + "/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("jobd_rows_pruned_total{table=\"job\"} 50\n"));
  EXPECT_THAT(metrics, HasSubstr("jobd_rows_pruned_total{table=\"oops\"} 2\n"));
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// While another session holds the cleaner's lock (as a cleaning daemon
// does), no daemon deletes anything; once it lets go, one does.
TEST(CleanerTest, OneDaemonOfTheFleetCleansAtATime) {
  TestDatabase db;
  insertFinished(db, "noop", 10, "3 days");
  auto holder = db.connect();
  pqxx::nontransaction hold(*holder);
  hold.exec("SELECT pg_advisory_lock(hashtextextended('jobd cleaner', 0))");

  Daemon daemon(db, "[jobd]\nclean_interval: 100ms\nlog_level: debug\n[noop]\nkeep_finished: 1d\n");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_TRUE(daemon.waitForLog("CLEAN_SKIPPED")) << daemon.log();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job"), "10");

  hold.exec("SELECT pg_advisory_unlock(hashtextextended('jobd cleaner', 0))");
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job", "0", 30s), "0") << daemon.log();
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// `count` noop jobs finished three days ago, one in ten with an attempt row
// if `attempts`, and the table analysed.
void insertManyFinished(const TestDatabase& db, int count, bool attempts) {
  auto setup = db.connect();
  pqxx::nontransaction txn(*setup);
  txn.exec(
      "INSERT INTO jobd.job (job_type, status, attempt_count, date_finished) SELECT "
      "'noop', 2, 1, now() - interval '3 days' FROM generate_series(1, " +
      std::to_string(count) + ")");
  if (attempts) {
    txn.exec(
        "INSERT INTO jobd.job_attempt (job_id, attempt, outcome) SELECT id, 1, 'failed' "
        "FROM jobd.job WHERE id % 10 = 0");
  }
  txn.exec("VACUUM ANALYZE jobd.job");
}

// A million finished rows: while the cleaner works through them, every
// enqueue commits at once (lock_timeout 1s would fail it otherwise) and
// every job enqueued meanwhile is claimed and completed within seconds.
TEST(CleanerTest, AMillionFinishedRowsAreCleanedWithoutHoldingUpEnqueueOrClaim) {
  TestDatabase db;
  auto began = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  insertManyFinished(db, 1000000, true);
  std::printf("a million finished rows inserted in %.1f s\n", since(began));
  std::fflush(stdout);
  Daemon daemon(db,
                "[jobd]\nclean_interval: 100ms\npoll_interval: 1s\n[noop]\nkeep_finished: 1d\n");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_TRUE(daemon.waitForLog("DAEMON_READY"));

  const std::string left =
      "SELECT EXISTS (SELECT 1 FROM jobd.job WHERE status = 2 AND date_finished < now() - "
      "interval '1 day')";
  auto conn = db.connect();
  int probes = 0;
  std::chrono::steady_clock::duration slowest{};
  const auto give_up = std::chrono::steady_clock::now() + 7min;  // within ctest's 600 s
  began = std::chrono::steady_clock::now();
  while (db.scalar(left) == "t") {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the cleaner never finished";
    auto start = std::chrono::steady_clock::now();
    pqxx::work txn(*conn);
    txn.exec("SET LOCAL lock_timeout = '1s'");
    txn.exec("SELECT jobd.enqueue('noop', '{\"probe\": true}')");
    txn.commit();
    slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
    ++probes;
    std::this_thread::sleep_for(50ms);
  }
  std::printf("the cleaner took %.1f s, %d probes enqueued meanwhile\n", since(began), probes);
  std::fflush(stdout);
  // The cleaner was at work for a good while, and took its time in batches;
  // no enqueue waited for a lock (lock_timeout would have failed it), and
  // none took long (a bound loose enough for a loaded sanitizer build).
  EXPECT_GE(probes, 5);
  EXPECT_LT(slowest, 3s);
  EXPECT_EQ(
      waitForValue(db, "SELECT count(*) FROM jobd.job WHERE json_data ? 'probe' AND status <> 2",
                   "0", 30s),
      "0")
      << daemon.log();
  // Each probe was claimed within seconds (NOTIFY, or a 1 s poll), not
  // after the cleaner's pass (tens of seconds).
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE json_data ? 'probe' AND "
                      "date_started - date_created > interval '5 seconds'"),
            "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt"), "0");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// A draining daemon deletes nothing more: the pass in progress ends before
// its next batch, while a running job keeps the daemon up (review of issue
// 18: before, the batches already queued went on until the pass ended).
TEST(CleanerTest, ADrainEndsThePassInProgress) {
  TestDatabase db;
  insertManyFinished(db, 300000, false);
  Daemon daemon(db,
                "[jobd]\nclean_interval: 100ms\ndrain_timeout: 60s\n[noop]\nkeep_finished: 1d\n"
                "[sleep]\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string sleeper = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 8000}')");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + sleeper, "1", 30s), "1");
  const std::string finished = "SELECT count(*) FROM jobd.job WHERE status = 2";
  ASSERT_EQ(waitForValue(db, "(" + finished + ") < 295000", "true", 60s), "true") << daemon.log();
  daemon.process().signal(SIGTERM);
  ASSERT_TRUE(daemon.waitForLog("DAEMON_DRAINING")) << daemon.log();
  std::this_thread::sleep_for(500ms);  // a batch in flight at the signal commits
  std::string at_drain = db.scalar(finished);
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(db.scalar(finished), at_drain);
  EXPECT_NE(at_drain, "0");
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + sleeper), "1");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
