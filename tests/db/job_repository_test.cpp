// JobRepository (store/job_repository.hpp) against a real PostgreSQL: the
// statements the daemon runs all day stay on their indexes, and a claim
// that meets a racing daemon is tried again.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "store/db_error.hpp"
#include "store/job_repository.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

// Defect 4 of issue 17: STATUS='s count of waiting jobs read the whole
// table every 5 s (no index has `status = 0` alone as its predicate), and
// grew with the finished rows. It now reads the claim's two partial
// indexes only.
TEST(JobRepositoryTest, CountingWaitingJobsNeverReadsTheFinishedRows) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.job (job_type, status, date_finished) "
      "SELECT 'noop', 2 + (n % 2), now() FROM generate_series(1, 200000) AS n");
  db.scalar("SELECT jobd.enqueue('noop')");
  db.scalar("SELECT jobd.enqueue('noop', scheduled_start => now() - interval '1 minute')");
  db.scalar("SELECT jobd.enqueue('noop', scheduled_start => now() + interval '1 hour')");
  db.scalar("ANALYZE jobd.job");

  auto conn = db.connect();
  std::string sql = JobRepository::countWaitingSql();
  for (std::size_t at = sql.find("$1"); at != std::string::npos; at = sql.find("$1")) {
    sql.replace(at, 2, "100000");
  }
  std::string plan;
  {
    pqxx::nontransaction txn(*conn);
    for (const pqxx::row& row : txn.exec("EXPLAIN " + sql)) {
      plan += row[0].c_str() + std::string("\n");
    }
  }
  EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;

  JobRepository repo(*conn, "test-owner");
  EXPECT_EQ(repo.countWaiting(100000), 3);
  EXPECT_EQ(repo.countWaiting(2), 2);
}

// The OOPS rows of unsent notices go in one statement. A job deleted
// meanwhile (by the cleaner, or an operator) no longer fails the whole
// batch on the foreign key: its row is kept without a job_id, as ON DELETE
// SET NULL leaves the older ones (issue 18 review: every row was lost).
TEST(JobRepositoryTest, OopsRowsOfADeletedJobAreKeptWithoutIt) {
  TestDatabase db;
  std::string kept = db.scalar("SELECT jobd.enqueue('fail')");
  std::string gone = db.scalar("SELECT jobd.enqueue('fail')");
  db.scalar("DELETE FROM jobd.job WHERE id = " + gone + " RETURNING 1");
  auto oops = [](const std::string& id, const std::string& job_id) {
    OopsReport o;
    o.id = id;
    o.reporter = "jobd";
    o.job_id = std::stoll(job_id);
    o.job_type = "fail";
    o.attempt = 1;
    o.type = "NoticeError";
    return o;
  };
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  repo.insertOopses({oops("OOPS-1", kept), oops("OOPS-2", gone)});
  EXPECT_EQ(db.scalar("SELECT string_agg(id || ':' || COALESCE(job_id::text, 'none') || ':' || "
                      "attempt, ',' ORDER BY id) FROM jobd.oops"),
            "OOPS-1:" + kept + ":1,OOPS-2:none:1");
}

// Defect 5 of issue 17: a claim that met a deadlock (two daemons taking
// jobs of one target) failed, and its jobs waited for the next poll. The
// statement changed nothing, so it is sent again. A trigger raises the
// deadlock on the first try only (a sequence is not rolled back).
TEST(JobRepositoryTest, AClaimThatMeetsADeadlockIsTriedAgain) {
  TestDatabase db;
  db.scalar(R"sql(
    CREATE SEQUENCE claim_tries;
    CREATE FUNCTION deadlock_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF nextval('claim_tries') = 1 THEN
        RAISE EXCEPTION 'deadlock detected (injected)' USING ERRCODE = '40P01';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER deadlock_once BEFORE UPDATE ON jobd.job
      FOR EACH ROW WHEN (OLD.status = 0 AND NEW.status = 1) EXECUTE FUNCTION deadlock_once();
  )sql");
  std::string id = db.scalar("SELECT jobd.enqueue('noop', target => 'repo:1')");

  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  ClaimResult result = repo.claim({"noop", "noop", 4});
  ASSERT_EQ(result.jobs.size(), 1U);
  EXPECT_EQ(std::to_string(result.jobs[0].id), id);
  EXPECT_EQ(db.scalar("SELECT last_value FROM claim_tries"), "2");
  EXPECT_EQ(db.scalar("SELECT status::text || lease_owner FROM jobd.job WHERE id = " + id),
            "1test-owner");
}

// Defect 5 of issue 17: the claim read and sorted every due scheduled job
// (job_scheduled_idx is in time order, the claim's is priority, then id),
// so a backlog of retried or released jobs, all scheduled, made every claim
// slower (170-250 ms at 200,000 rows). It now reads a window of the longest
// due, in the index's order, and orders that window by priority.
TEST(JobRepositoryTest, AClaimReadsAWindowOfTheDueJobsNotAllOfThem) {
  TestDatabase db;
  const int due = 20000;
  // Job n is due n seconds ago; the longest due (the highest ids) come first.
  db.scalar(
      "INSERT INTO jobd.job (job_type, scheduled_start, priority) "
      "SELECT 'noop', now() - make_interval(secs => n), "
      "       CASE WHEN n = " +
      std::to_string(due - 10) +
      " THEN -5 ELSE 0 END "
      "FROM generate_series(1, " +
      std::to_string(due) + ") AS n");
  db.scalar("ANALYZE jobd.job");
  std::string urgent = db.scalar("SELECT id FROM jobd.job WHERE priority = -5");

  // Prepared, as the daemon's claim is, and run several times: the
  // function's statement keeps the plan it made on the first.
  auto conn = db.connect();
  conn->prepare("claim", JobRepository::claimSql());
  pqxx::work txn(*conn);
  constexpr int kClaims = 7;
  std::vector<std::string> first_ids;
  for (int i = 0; i < kClaims; ++i) {
    pqxx::result claimed =
        txn.exec_prepared("claim", "noop", 32, "30 seconds", "test-owner", 1024 * 1024);
    ASSERT_EQ(claimed.size(), 32U);
    first_ids.push_back(claimed[0][0].as<std::string>());
  }
  pqxx::row read = txn.exec1(
      "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_user_tables "
      "WHERE relid = 'jobd.job'::regclass");
  // Priority, then id, within the window: the urgent job first.
  EXPECT_EQ(first_ids[0], urgent);
  EXPECT_EQ(read[0].as<int>(), 0) << "the claim scanned jobd.job";
  EXPECT_LE(read[1].as<int>(), kClaims * (kDueWindow + 3 * 32 + 100))
      << "the claims fetched more rows than their windows";
}

// Issue 17 ("a claim ... that cannot fall into a bad plan"): the claim's
// statement keeps one generic plan per session (jobd.claim_ready, migration
// 11). Made while the queue was empty, with the statistics of an empty
// table, it must still read the partial indexes and find rows by primary
// key when a backlog comes: before, such a plan read jobd.job by sequential
// scans (and, with those ruled out alone, walked the whole primary key for
// the UPDATE), 630 ms a claim at 200,000 rows.
TEST(JobRepositoryTest, TheClaimsPlanMadeOnAnEmptyQueueServesABacklog) {
  TestDatabase db;
  db.scalar("ANALYZE jobd.job");  // the statistics of an empty queue
  auto conn = db.connect();
  conn->prepare("claim", JobRepository::claimSql());
  pqxx::work txn(*conn);
  for (int i = 0; i < 8; ++i) {
    txn.exec_prepared("claim", "noop", 8, "30 seconds", "test-owner", 1024 * 1024);
  }
  // A backlog of every kind: unscheduled, due, and with targets, one of
  // them held by a RUNNING job.
  txn.exec("INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, 10000)");
  txn.exec(
      "INSERT INTO jobd.job (job_type, scheduled_start) "
      "SELECT 'noop', now() - make_interval(secs => n) FROM generate_series(1, 5000) AS n");
  txn.exec(
      "INSERT INTO jobd.job (job_type, target, priority) "
      "SELECT 'noop', 't' || (n % 100), -1 FROM generate_series(1, 2000) AS n");
  txn.exec(
      "INSERT INTO jobd.job (job_type, target, status, lease_expires, lease_owner) "
      "VALUES ('other', 't1', 1, now() + interval '1 hour', 'elsewhere')");
  auto reads = [&] {
    return txn.exec1(
        "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_user_tables "
        "WHERE relid = 'jobd.job'::regclass");
  };
  pqxx::row before = reads();
  pqxx::result claimed =
      txn.exec_prepared("claim", "noop", 32, "30 seconds", "test-owner", 1024 * 1024);
  pqxx::row after = reads();
  EXPECT_EQ(claimed.size(), 32U);
  EXPECT_EQ(after[0].as<int>(), before[0].as<int>()) << "the claim scanned jobd.job";
  // Its window of due jobs (kDueWindow + 32), what it claims and locks, and
  // the targeted jobs it passes over (those of the held target, and one
  // per target): not the backlog.
  EXPECT_LE(after[1].as<int>() - before[1].as<int>(), kDueWindow + 32 * 8 + 100)
      << "the claim fetched more rows than its window";
}

// The same with a plan made while many jobs waited and none was scheduled:
// the statistics then made job_scheduled_idx look cheaper than the primary
// key for the lookup of each due job by id, and each lookup walked the
// whole due range of that index (schema 11; schema 12 rules it out).
TEST(JobRepositoryTest, TheClaimsPlanMadeWithNothingScheduledServesADueBacklog) {
  TestDatabase db;
  db.scalar("INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, 20000)");
  db.scalar("ANALYZE jobd.job");
  auto conn = db.connect();
  conn->prepare("claim", JobRepository::claimSql());
  pqxx::work txn(*conn);
  for (int i = 0; i < 8; ++i) {
    txn.exec_prepared("claim", "noop", 8, "30 seconds", "test-owner", 1024 * 1024);
  }
  // Due jobs that the claim takes first: each is looked up by id.
  txn.exec(
      "INSERT INTO jobd.job (job_type, scheduled_start, priority) "
      "SELECT 'noop', now() - make_interval(secs => n), -1 FROM generate_series(1, 5000) AS n");
  auto reads = [&] {
    return txn.exec1(
        "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_user_tables "
        "WHERE relid = 'jobd.job'::regclass");
  };
  pqxx::row before = reads();
  pqxx::result claimed =
      txn.exec_prepared("claim", "noop", 32, "30 seconds", "test-owner", 1024 * 1024);
  pqxx::row after = reads();
  ASSERT_EQ(claimed.size(), 32U);
  EXPECT_EQ(claimed[0]["priority"].as<int>(), -1);
  EXPECT_EQ(after[0].as<int>(), before[0].as<int>()) << "the claim scanned jobd.job";
  EXPECT_LE(after[1].as<int>() - before[1].as<int>(), kDueWindow + 32 * 8 + 100)
      << "the claim fetched more rows than its window";
}

// The window's size in the claim's SQL is kDueWindow, which MemoryStore
// uses too.
TEST(JobRepositoryTest, TheClaimsWindowIsKDueWindow) {
  TestDatabase db;
  std::string body = db.scalar(
      "SELECT prosrc FROM pg_proc WHERE oid = 'jobd.claim_ready(text, integer, interval, text, "
      "bigint)'::regprocedure");
  EXPECT_NE(body.find("LIMIT " + std::to_string(kDueWindow) + " + $2"), std::string::npos);
}

// Due jobs that other transactions hold locked (another daemon's claim in
// flight, a jobd.acquire caller) are passed over, and the claim takes the
// next ones of its window: it is not cut short by them.
TEST(JobRepositoryTest, AClaimPassesOverLockedDueJobs) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.job (job_type, scheduled_start) "
      "SELECT 'noop', now() - make_interval(secs => n) FROM generate_series(1, 200) AS n");
  auto holder_conn = db.connect();
  pqxx::work holder(*holder_conn);
  std::set<std::int64_t> locked;
  for (const pqxx::row& row : holder.exec("SELECT id FROM jobd.job ORDER BY priority, id "
                                          "LIMIT 50 FOR UPDATE")) {
    locked.insert(row[0].as<std::int64_t>());
  }
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  ClaimResult result = repo.claim({"noop", "noop", 2});
  ASSERT_EQ(result.jobs.size(), 2U);
  for (const runtime::ClaimedJob& job : result.jobs) {
    EXPECT_EQ(locked.count(job.id), 0U) << "a locked job was claimed";
  }
}

// A renewal never waits for a row lock. A `sql` job whose connection
// stalled between its fenced COMPLETED mark and its COMMIT kept its row
// locked until the server ended the session; the daemon's one renewal
// statement waited on it into its deadline, every other lease went
// unrenewed and was rescued (CI of e3ee778, ReliabilityFaults). Now the
// locked row is skipped and named busy: neither renewed nor lost.
TEST(JobRepositoryTest, ARenewalPassesOverARowAnotherTransactionHolds) {
  TestDatabase db;
  db.scalar("SELECT jobd.enqueue('noop') FROM generate_series(1, 3)");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  ClaimResult claimed = repo.claim({"noop", "noop", 3, std::chrono::seconds(30)});
  ASSERT_EQ(claimed.jobs.size(), 3U);
  const runtime::ClaimedJob& stalled = claimed.jobs[0];

  auto holder_conn = db.connect();
  pqxx::work holder(*holder_conn);
  holder.exec_params("SELECT jobd.complete_in_job_transaction($1, $2, 'test-owner')", stalled.id,
                     stalled.attempt);
  {
    // The statement_timeout makes the old behaviour fail here, not hang.
    pqxx::nontransaction set(*conn);
    set.exec("SET statement_timeout = '2s'");
  }
  std::vector<HeldLease> leases;
  for (const runtime::ClaimedJob& job : claimed.jobs) {
    leases.push_back({job.id, job.attempt, std::chrono::seconds(60)});
  }
  leases.push_back({claimed.jobs[1].id + 1000, 1, std::chrono::seconds(60)});  // no such job
  RenewResult result = repo.renewLeases(leases);
  EXPECT_EQ(result.busy, (std::vector<std::int64_t>{stalled.id}));
  EXPECT_EQ(result.lost, (std::vector<std::int64_t>{claimed.jobs[1].id + 1000}));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE lease_expires > now() + "
                      "interval '50 seconds'"),
            "2");
  // Once the holder is gone, the row is renewed again, or found lost.
  holder.abort();
  result = repo.renewLeases(leases);
  EXPECT_TRUE(result.busy.empty());
  EXPECT_EQ(result.lost.size(), 1U);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE lease_expires > now() + "
                      "interval '50 seconds'"),
            "3");
}

// A claimed job's local clock (its lease deadline, its timeout) starts when
// the claim was sent, not when its reply came back: a reply that took 600 ms
// (a trigger sleeps) must not add 600 ms to the lease this daemon believes
// it holds (issue 18, item 16).
TEST(JobRepositoryTest, TheLocalLeaseCountsFromTheClaimsSend) {
  TestDatabase db;
  db.scalar(R"sql(
    CREATE FUNCTION slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_sleep(0.6);
      RETURN NEW;
    END $$;
    CREATE TRIGGER slow_claim BEFORE UPDATE ON jobd.job
      FOR EACH ROW WHEN (OLD.status = 0 AND NEW.status = 1) EXECUTE FUNCTION slow_claim();
  )sql");
  db.scalar("SELECT jobd.enqueue('noop')");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  auto before = std::chrono::steady_clock::now();
  ClaimResult result = repo.claim({"noop", "noop", 1});
  auto after = std::chrono::steady_clock::now();
  ASSERT_EQ(result.jobs.size(), 1U);
  EXPECT_GE(after - before, std::chrono::milliseconds(600));
  EXPECT_LE(result.jobs[0].claimed_at - before, std::chrono::milliseconds(100));
}

// A claim that keeps failing for a reason a retry cannot help is reported
// at once, with its class.
TEST(JobRepositoryTest, OtherClaimErrorsAreNotRetried) {
  TestDatabase db;
  db.scalar(R"sql(
    CREATE SEQUENCE claim_tries;
    CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM nextval('claim_tries');
      RAISE EXCEPTION 'refused' USING ERRCODE = 'P0001';
    END $$;
    CREATE TRIGGER refuse BEFORE UPDATE ON jobd.job FOR EACH ROW EXECUTE FUNCTION refuse();
  )sql");
  db.scalar("SELECT jobd.enqueue('noop')");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  try {
    repo.claim({"noop", "noop", 4});
    ADD_FAILURE() << "no exception";
  } catch (const pqxx::sql_error& e) {
    EXPECT_EQ(classify(e), DbErrorClass::kOther);
  }
  EXPECT_EQ(db.scalar("SELECT nextval('claim_tries')"), "2");
}

}  // namespace
}  // namespace jobd::store
