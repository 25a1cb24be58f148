#include <gtest/gtest.h>

#include <barrier>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "store/job_repository.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

std::int64_t acquire(pqxx::transaction_base& txn, const std::string& type,
                     const std::string& target) {
  return txn.exec_params1("SELECT jobd.acquire($1, $2)", type, target)[0].as<std::int64_t>();
}

// The WAITING job of a type and target is returned, not duplicated; a new
// one is made once that job has started.
TEST(AcquireTest, ReusesTheWaitingJob) {
  TestDatabase db;
  auto conn = db.connect();
  pqxx::work txn(*conn);
  std::int64_t first = acquire(txn, "diff", "mp:1");
  EXPECT_EQ(acquire(txn, "diff", "mp:1"), first);
  EXPECT_NE(acquire(txn, "diff", "mp:2"), first);
  EXPECT_NE(acquire(txn, "other", "mp:1"), first);
  txn.exec_params("UPDATE jobd.job SET status = 1 WHERE id = $1", first);
  EXPECT_NE(acquire(txn, "diff", "mp:1"), first);
  txn.commit();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'diff' AND target = 'mp:1'"),
            "2");
}

// acquire needs a target.
TEST(AcquireTest, NeedsATarget) {
  TestDatabase db;
  EXPECT_THROW(db.scalar("SELECT jobd.acquire('diff', NULL)"), pqxx::sql_error);
}

// Waits until some session of this test's database waits for a lock, for
// at most ten seconds.
void waitForALockWaitIn(const TestDatabase& db) {
  auto watcher = db.connect();
  for (int i = 0; i < 1000; ++i) {
    pqxx::nontransaction q(*watcher);
    if (q.exec("SELECT count(*) FROM pg_stat_activity "
               "WHERE datname = current_database() AND wait_event_type = 'Lock'")[0][0]
            .as<int>() > 0) {
      return;
    }
    q.exec("SELECT pg_sleep(0.01)");
  }
  FAIL() << "no session waited for a lock within 10 s";
}

// Runs `work` in a transaction of its own, on its own connection and
// thread, and commits `holder` only once some session waits for a lock, so
// that the race is real rather than a matter of scheduling. Returns what
// `work` threw, or "".
std::string raceAgainst(const TestDatabase& db, pqxx::work& holder,
                        const std::function<void(pqxx::work&)>& work) {
  std::string error;
  std::thread other([&] {
    try {
      auto conn = db.connect();
      pqxx::work txn(*conn);
      work(txn);
      txn.commit();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  waitForALockWaitIn(db);
  holder.commit();
  other.join();
  return error;
}

// Two transactions racing on one type and target: the second waits for the
// first to commit, then returns its job, so exactly one job is WAITING.
TEST(AcquireTest, TwoTransactionsRace) {
  TestDatabase db;
  auto first_conn = db.connect();
  pqxx::work first(*first_conn);
  std::int64_t first_id = acquire(first, "diff", "mp:7");

  std::int64_t second_id = 0;
  EXPECT_EQ(
      raceAgainst(db, first, [&](pqxx::work& txn) { second_id = acquire(txn, "diff", "mp:7"); }),
      "");
  EXPECT_EQ(second_id, first_id);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND target = 'mp:7'"), "1");
}

// A claim that holds the WAITING job when acquire looks (its transaction
// not yet committed) has taken it: acquire waits for the claim, then makes
// a new job instead of returning one that has already started (issue 18,
// item 7: before, it returned the claimed job without waiting, and the
// caller's change was left to a job that had read the old state).
TEST(AcquireTest, AJobBeingClaimedIsNotReturned) {
  TestDatabase db;
  std::int64_t first = std::stoll(db.scalar("SELECT jobd.acquire('diff', 'mp:3')"));
  auto claim_conn = db.connect();
  pqxx::work claim(*claim_conn);
  claim.exec_params("SELECT 1 FROM jobd.job WHERE id = $1 FOR UPDATE SKIP LOCKED", first);
  claim.exec_params("UPDATE jobd.job SET status = 1, attempt_count = 1 WHERE id = $1", first);

  std::int64_t got = 0;
  EXPECT_EQ(raceAgainst(db, claim, [&](pqxx::work& txn) { got = acquire(txn, "diff", "mp:3"); }),
            "");
  EXPECT_NE(got, first);
  EXPECT_EQ(db.scalar("SELECT string_agg(status::text, ',' ORDER BY id) FROM jobd.job"), "1,0");
}

// The job acquire returns stays out of every claim until the caller
// commits: its change is visible to the job when it runs (before, a daemon
// could claim and run it while the caller's transaction was still open).
TEST(AcquireTest, AnAcquiredJobIsNotClaimedBeforeTheCallerCommits) {
  TestDatabase db;
  std::int64_t id = std::stoll(db.scalar("SELECT jobd.acquire('diff', 'mp:4')"));
  auto caller_conn = db.connect();
  pqxx::work caller(*caller_conn);
  EXPECT_EQ(acquire(caller, "diff", "mp:4"), id);

  auto daemon_conn = db.connect();
  JobRepository repo(*daemon_conn, "test-owner");
  EXPECT_TRUE(repo.claim({"diff", "diff", 4}).jobs.empty());
  caller.commit();
  ClaimResult after = repo.claim({"diff", "diff", 4});
  ASSERT_EQ(after.jobs.size(), 1U);
  EXPECT_EQ(after.jobs[0].id, id);
}

// An acquired job that goes back to WAITING while acquire made another
// WAITING job of its type and target yields to it: one WAITING job, as
// SPEC §4.2 promises; the returning one ends FAILED naming the other.
// Plain enqueued jobs with a target are not touched.
TEST(AcquireTest, ARequeuedJobYieldsToTheWaitingOneAcquireMade) {
  TestDatabase db;
  std::string first = db.scalar("SELECT jobd.acquire('diff', 'mp:5')");
  db.scalar("UPDATE jobd.job SET status = 1, attempt_count = 1 WHERE id = " + first +
            " RETURNING 1");
  std::string second = db.scalar("SELECT jobd.acquire('diff', 'mp:5')");
  ASSERT_NE(second, first);
  db.scalar("UPDATE jobd.job SET status = 0, log = 'RetryError: later' WHERE id = " + first +
            " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND target = 'mp:5'"), "1");
  EXPECT_EQ(db.scalar("SELECT status || ' ' || log FROM jobd.job WHERE id = " + first),
            "3 RetryError: later\nsuperseded by job " + second +
                ", WAITING for the same type and target");

  std::string plain = db.scalar("SELECT jobd.enqueue('mail', target => 'person:1')");
  db.scalar("SELECT jobd.enqueue('mail', target => 'person:1')");
  db.scalar("UPDATE jobd.job SET status = 1 WHERE id = " + plain + " RETURNING 1");
  db.scalar("UPDATE jobd.job SET status = 0 WHERE id = " + plain + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND target = 'person:1'"),
            "2");
}

// A job going back to WAITING never waits for a caller of acquire, whose
// transaction may be a long web request (issue 18 review: version 7's
// trigger took acquire's advisory lock, so a requeue waited for the
// caller's COMMIT). The caller's commit settles it: the returning job
// yields to the one acquire made.
TEST(AcquireTest, ARequeueDoesNotWaitForAnOpenCaller) {
  TestDatabase db;
  std::string first = db.scalar("SELECT jobd.acquire('diff', 'mp:6')");
  db.scalar("UPDATE jobd.job SET status = 1, attempt_count = 1 WHERE id = " + first +
            " RETURNING 1");
  auto caller_conn = db.connect();
  pqxx::work caller(*caller_conn);
  std::int64_t made = acquire(caller, "diff", "mp:6");
  ASSERT_NE(std::to_string(made), first);

  auto daemon_conn = db.connect();
  {
    pqxx::work requeue(*daemon_conn);
    requeue.exec("SET LOCAL lock_timeout = '2s'");
    requeue.exec("UPDATE jobd.job SET status = 0 WHERE id = " + first);
    requeue.commit();
  }
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + first), "0");
  caller.commit();
  EXPECT_EQ(db.scalar("SELECT string_agg(id::text, ',') FROM jobd.job WHERE status = 0"),
            std::to_string(made));
  EXPECT_EQ(
      db.scalar("SELECT status || ' ' || log FROM jobd.job WHERE id = " + first),
      "3 superseded by job " + std::to_string(made) + ", WAITING for the same type and target");
}

// The other order: a requeue not yet committed when the caller commits.
// The caller's COMMIT waits for it (a short daemon transaction), then the
// returning job yields; one WAITING job either way.
TEST(AcquireTest, ACallerCommittingDuringARequeueWaitsForIt) {
  TestDatabase db;
  std::string first = db.scalar("SELECT jobd.acquire('diff', 'mp:8')");
  db.scalar("UPDATE jobd.job SET status = 1, attempt_count = 1 WHERE id = " + first +
            " RETURNING 1");
  auto daemon_conn = db.connect();
  pqxx::work requeue(*daemon_conn);
  requeue.exec("UPDATE jobd.job SET status = 0 WHERE id = " + first);

  std::int64_t made = 0;
  EXPECT_EQ(raceAgainst(db, requeue, [&](pqxx::work& txn) { made = acquire(txn, "diff", "mp:8"); }),
            "");
  EXPECT_EQ(db.scalar("SELECT string_agg(id::text, ',') FROM jobd.job WHERE status = 0"),
            std::to_string(made));
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + first), "3");
}

// An operator's retry of a finished acquired job (COMPLETED or FAILED), not
// yet committed when a caller's acquire commits: the caller's COMMIT waits
// for it, then the retried job yields. Before (schema 8), the check at
// COMMIT locked only RUNNING and SUSPENDED jobs, missed the retry, and two
// jobs were left WAITING (issue 18 review).
class AcquireRetryTest : public ::testing::TestWithParam<int> {};

TEST_P(AcquireRetryTest, ACallerCommittingDuringAnOperatorsRetryWaitsForIt) {
  TestDatabase db;
  std::string first = db.scalar("SELECT jobd.acquire('diff', 'mp:10')");
  db.scalar("UPDATE jobd.job SET status = " + std::to_string(GetParam()) +
            ", date_finished = now() WHERE id = " + first + " RETURNING 1");
  auto operator_conn = db.connect();
  pqxx::work retry(*operator_conn);
  retry.exec("UPDATE jobd.job SET status = 0, date_finished = now() WHERE id = " + first);

  std::int64_t made = 0;
  EXPECT_EQ(raceAgainst(db, retry, [&](pqxx::work& txn) { made = acquire(txn, "diff", "mp:10"); }),
            "");
  EXPECT_EQ(db.scalar("SELECT string_agg(id::text, ',') FROM jobd.job WHERE status = 0"),
            std::to_string(made));
  EXPECT_EQ(db.scalar("SELECT log FROM jobd.job WHERE id = " + first),
            "superseded by job " + std::to_string(made) + ", WAITING for the same type and target");
}

INSTANTIATE_TEST_SUITE_P(FinishedJobs, AcquireRetryTest, ::testing::Values(2, 3),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == 2 ? std::string("Completed")
                                                  : std::string("Failed");
                         });

// The check at the caller's COMMIT reads indexes only: a table of finished
// jobs is not scanned (before, its predicate status IN (1, 4) matched no
// index, and every acquire that made a job read all of jobd.job). SET
// CONSTRAINTS ALL IMMEDIATE runs the check at the acquire itself, so that
// this transaction's own counters (pg_stat_xact_user_tables) show its scans.
TEST(AcquireTest, TheCheckAtCommitScansNoTable) {
  TestDatabase db;
  db.scalar(
      "WITH made AS (INSERT INTO jobd.job (job_type, target, status, date_finished) "
      "SELECT 'diff', 'mp:' || i, 2, now() FROM generate_series(1, 20000) AS i "
      "RETURNING 1) SELECT count(*) FROM made");
  db.scalar("ANALYZE jobd.job; SELECT 1");
  auto conn = db.connect();
  pqxx::work txn(*conn);
  auto scans = [&] {
    return txn
        .exec1(
            "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'jobd.job'::regclass")[0]
        .as<int>();
  };
  txn.exec("SET CONSTRAINTS ALL IMMEDIATE");
  int before = scans();
  for (int i = 0; i < 5; ++i) {
    acquire(txn, "diff", "mp:" + std::to_string(i + 1));
  }
  EXPECT_EQ(scans(), before);
  txn.commit();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0"), "5");
}

// Two acquired jobs of one type and target going back to WAITING at once,
// in two transactions (one retried as it ends, the other, suspended, resumed
// by an operator): the second waits for the first and yields to it.
TEST(AcquireTest, TwoRequeuesAtOnceLeaveOneWaitingJob) {
  TestDatabase db;
  std::string first = db.scalar("SELECT jobd.acquire('diff', 'mp:9')");
  db.scalar("UPDATE jobd.job SET status = 1 WHERE id = " + first + " RETURNING 1");
  std::string second = db.scalar("SELECT jobd.acquire('diff', 'mp:9')");
  db.scalar("UPDATE jobd.job SET status = 4 WHERE id = " + second + " RETURNING 1");

  auto one_conn = db.connect();
  pqxx::work one(*one_conn);
  one.exec("UPDATE jobd.job SET status = 0 WHERE id = " + first);
  EXPECT_EQ(raceAgainst(db, one,
                        [&](pqxx::work& txn) {
                          txn.exec("UPDATE jobd.job SET status = 0 WHERE id = " + second);
                        }),
            "");
  EXPECT_EQ(db.scalar("SELECT string_agg(id::text, ',') FROM jobd.job WHERE status = 0"), first);
}

// Many transactions racing at once still leave one WAITING job.
TEST(AcquireTest, ManyTransactionsRace) {
  TestDatabase db;
  constexpr int kThreads = 8;
  std::barrier start(kThreads);
  std::vector<std::int64_t> ids(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto conn = db.connect();
      start.arrive_and_wait();
      for (int round = 0; round < 10; ++round) {
        pqxx::work txn(*conn);
        ids[i] = acquire(txn, "diff", "mp:burst");
        txn.commit();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE target = 'mp:burst'"), "1");
  for (std::int64_t id : ids) {
    EXPECT_EQ(id, ids[0]);
  }
}

}  // namespace
}  // namespace jobd::store
