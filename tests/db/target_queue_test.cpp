#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store/job_repository.hpp"
#include "store/job_store.hpp"
#include "test_database.hpp"

// Schema 12: the unscheduled WAITING jobs of one type and target form a
// queue; only its head is in the claim's part of job_unscheduled_idx, the
// others are `behind` (docs/schema.md, "Jobs of one target").
namespace jobd::store {
namespace {

using testing::TestDatabase;

// A RUNNING job of type 'noop' on target, held by another daemon; its id.
std::string running(const TestDatabase& db, const std::string& target) {
  return db.scalar(
      "INSERT INTO jobd.job (job_type, status, target, attempt_count, date_started, "
      "lease_expires, lease_owner) VALUES ('noop', 1, '" +
      target + "', 1, now(), now() + interval '1 hour', 'other') RETURNING id");
}

std::vector<std::string> claimIds(pqxx::connection& conn, int limit) {
  JobRepository repo(conn, "test-owner");
  std::vector<std::string> ids;
  for (const runtime::ClaimedJob& job : repo.claim({"noop", "noop", limit}).jobs) {
    ids.push_back(std::to_string(job.id));
  }
  return ids;
}

// Defect 5 of issue 17: every claim walked past every job queued behind a
// held target, and probed the RUNNING job's index for each (35-40 ms a claim
// at 200,000 such jobs). The claim now reads none of them.
TEST(TargetQueueTest, AClaimReadsNoJobQueuedBehindAHeldTarget) {
  TestDatabase db;
  running(db, "T");
  const int behind = 20000;
  db.scalar("SELECT count(jobd.enqueue('noop', target => 'T')) FROM generate_series(1, " +
            std::to_string(behind) + ")");
  db.scalar("INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, 40)");
  db.scalar("ANALYZE jobd.job");

  auto conn = db.connect();
  conn->prepare("claim", JobRepository::claimSql());
  pqxx::work txn(*conn);
  pqxx::result claimed =
      txn.exec_prepared("claim", "noop", 32, "30 seconds", "test-owner", 1024 * 1024);
  ASSERT_EQ(claimed.size(), 32U);
  for (const pqxx::row& row : claimed) {
    EXPECT_TRUE(row["target"].is_null());
  }
  pqxx::row read = txn.exec1(
      "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_user_tables "
      "WHERE relid = 'jobd.job'::regclass");
  EXPECT_EQ(read[0].as<int>(), 0) << "the claim scanned jobd.job";
  EXPECT_LE(read[1].as<int>(), 200) << "the claim read the jobs queued behind T";
}

// A claim of N took N jobs of one free target and started one of them. It
// now finds one head per target and fills its limit from the other jobs.
TEST(TargetQueueTest, AClaimFillsItsLimitPastTheJobsOfOneTarget) {
  TestDatabase db;
  std::string first = db.scalar(
      "SELECT min(id) FROM (SELECT jobd.enqueue('noop', target => 'T') AS id "
      "FROM generate_series(1, 10)) AS e");
  db.scalar("SELECT jobd.enqueue('noop') FROM generate_series(1, 5)");
  // Due scheduled jobs of one target are narrowed the same way.
  db.scalar(
      "SELECT jobd.enqueue('noop', target => 'S', scheduled_start => now() - interval '1 hour') "
      "FROM generate_series(1, 10)");
  auto conn = db.connect();
  std::vector<std::string> ids = claimIds(*conn, 4);
  ASSERT_EQ(ids.size(), 4U);
  EXPECT_EQ(ids[0], first);
  EXPECT_EQ(db.scalar("SELECT string_agg(DISTINCT coalesce(target, '-'), ',') FROM jobd.job "
                      "WHERE status = 1"),
            "-,T");
  EXPECT_EQ(claimIds(*conn, 10).size(), 3U) << "the other two untargeted, and one of S";
}

// The queue's jobs start one at a time, the best behind (priority, then id)
// next, each as soon as the one before it ends.
TEST(TargetQueueTest, WhenTheRunningJobEndsTheBestJobBehindItIsNext) {
  TestDatabase db;
  std::string r = running(db, "T");
  std::string a = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  std::string urgent = db.scalar("SELECT jobd.enqueue('noop', target => 'T', priority => -5)");
  std::string b = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  auto conn = db.connect();
  EXPECT_TRUE(claimIds(*conn, 10).empty());
  db.scalar("UPDATE jobd.job SET status = 2, date_finished = now() WHERE id = " + r);
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{urgent});
  EXPECT_TRUE(claimIds(*conn, 10).empty());
  db.scalar("UPDATE jobd.job SET status = 3, date_finished = now() WHERE id = " + urgent);
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{a});
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + a);
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + b), "f");
  // A head that leaves WAITING without running (an operator suspends it,
  // or it is deleted) passes its turn on.
  JobStore operators(*conn);
  std::string c = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  std::string gone = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  operators.apply(std::stoll(b), OperatorAction::kSuspend, "");
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + c), "f");
  db.scalar("DELETE FROM jobd.job WHERE id = " + c);
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{gone});
  // A job behind that an operator suspends comes back, when resumed, as a
  // head: probed while its target is held, claimed once it is free.
  std::string d = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + d), "t");
  operators.apply(std::stoll(d), OperatorAction::kSuspend, "");
  operators.apply(std::stoll(b), OperatorAction::kResume, "");
  operators.apply(std::stoll(d), OperatorAction::kResume, "");
  EXPECT_EQ(db.scalar("SELECT string_agg(behind::text, ',') FROM jobd.job WHERE id IN (" + b +
                      ", " + d + ")"),
            "false,false");
  EXPECT_TRUE(claimIds(*conn, 10).empty());
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + gone);
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{b});
}

// SPEC §4.4: jobs of one target run in claim order, priority then id. A
// job better than every head is a head too, and starts first; one that a
// head is as good as waits behind.
TEST(TargetQueueTest, AJobBetterThanTheHeadStartsBeforeIt) {
  TestDatabase db;
  std::string head = db.scalar("SELECT jobd.enqueue('noop', target => 'T', priority => 5)");
  std::string same = db.scalar("SELECT jobd.enqueue('noop', target => 'T', priority => 5)");
  std::string better = db.scalar("SELECT jobd.enqueue('noop', target => 'T', priority => 1)");
  std::string later = db.scalar("SELECT jobd.enqueue('noop', target => 'T', priority => 3)");
  EXPECT_EQ(db.scalar("SELECT string_agg(behind::text, ',' ORDER BY id) FROM jobd.job"),
            "false,true,false,true");
  auto conn = db.connect();
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    std::vector<std::string> ids = claimIds(*conn, 10);
    ASSERT_EQ(ids.size(), 1U);
    order.push_back(ids[0]);
    db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + ids[0]);
  }
  EXPECT_EQ(order, (std::vector<std::string>{better, later, head, same}));
}

// A head made by a race (here: an insert under REPEATABLE READ) does not
// let a later job pass older jobs of the same priority behind it.
TEST(TargetQueueTest, AnExtraHeadDoesNotJumpTheQueue) {
  TestDatabase db;
  std::string r = running(db, "T");
  std::string older = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  auto conn = db.connect();
  std::string later;
  {
    pqxx::transaction<pqxx::repeatable_read> txn(*conn);
    later = txn.exec1("SELECT jobd.enqueue('noop', target => 'T')")[0].as<std::string>();
    txn.commit();
  }
  EXPECT_EQ(db.scalar("SELECT string_agg(behind::text, ',' ORDER BY id) FROM jobd.job "
                      "WHERE status = 0"),
            "true,false");
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + r);
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{older});
}

// Each lock of a queue at COMMIT takes an entry of PostgreSQL's shared lock
// table: a transaction takes at most 256, and its jobs beyond them are
// heads. Jobs of one queue take one.
TEST(TargetQueueTest, ABulkEnqueueLocksAtMost256Queues) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.job (job_type, status, target, attempt_count, lease_expires, "
      "lease_owner) SELECT 'noop', 1, 't' || n, 1, now() + interval '1 hour', 'other' "
      "FROM generate_series(1, 300) AS n");
  db.scalar(
      "SELECT count(jobd.enqueue('noop', target => 't' || n)) "
      "FROM generate_series(1, 300) AS n");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND behind"), "256");
  db.scalar("SELECT count(jobd.enqueue('noop', target => 't1')) FROM generate_series(1, 1000)");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND behind"), "1256");
}

// A promotion tries the queue's lock for about 50 ms and then leaves the
// queue to the sweep: the COMMIT that holds the lock may be waiting for a
// lock of the promoting transaction.
TEST(TargetQueueTest, APromotionGivesUpOnABusyLockAndTheSweepFinishesIt) {
  TestDatabase db;
  std::string r = running(db, "T");
  std::string j = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  auto holder_conn = db.connect();
  pqxx::work holder(*holder_conn);
  holder.exec("SELECT pg_advisory_xact_lock(jobd.target_key('noop', 'T'))");
  auto daemon_conn = db.connect();
  pqxx::work daemon(*daemon_conn);
  daemon.exec("SET LOCAL statement_timeout = '5s'");
  daemon.exec("UPDATE jobd.job SET status = 2 WHERE id = " + r);
  daemon.commit();
  holder.commit();
  auto conn = db.connect();
  EXPECT_TRUE(claimIds(*conn, 10).empty());
  EXPECT_EQ(db.scalar("SELECT jobd.promote_stranded()"), "1");
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{j});
}

// The liveness rule: a job inserted behind a RUNNING job that ends before
// the insert commits (its end could not see the insert) is a head.
TEST(TargetQueueTest, AJobWhoseJobInFrontEndedBeforeItsCommitIsAHead) {
  TestDatabase db;
  std::string r = running(db, "T");
  auto web_conn = db.connect();
  pqxx::work web(*web_conn);
  std::string j = web.exec1("SELECT jobd.enqueue('noop', target => 'T')")[0].as<std::string>();
  EXPECT_EQ(web.exec1("SELECT behind FROM jobd.job WHERE id = " + j)[0].as<std::string>(), "t");
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + r);
  web.commit();
  auto conn = db.connect();
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{j});
}

// ... and when that end is still in flight at the insert's COMMIT: the
// insert does not wait for it, and becomes a head.
TEST(TargetQueueTest, AJobCommittingWhileTheJobInFrontEndsIsAHead) {
  TestDatabase db;
  std::string r = running(db, "T");
  auto web_conn = db.connect();
  pqxx::work web(*web_conn);
  std::string j = web.exec1("SELECT jobd.enqueue('noop', target => 'T')")[0].as<std::string>();
  auto daemon_conn = db.connect();
  pqxx::work daemon(*daemon_conn);
  daemon.exec("UPDATE jobd.job SET status = 2 WHERE id = " + r);
  web.exec("SET LOCAL statement_timeout = '5s'");
  web.commit();
  daemon.commit();
  auto conn = db.connect();
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{j});
}

// An insert that commits first stays behind, and the end that follows it
// promotes it.
TEST(TargetQueueTest, AnEndAfterTheInsertsCommitPromotesIt) {
  TestDatabase db;
  std::string r = running(db, "T");
  std::string j = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + j), "t");
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + r);
  auto conn = db.connect();
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{j});
}

// Only jobd.enqueue and jobd.acquire put a job behind: a row inserted
// into jobd.job directly is a head (probed while its target is held).
TEST(TargetQueueTest, ADirectInsertIsAHead) {
  TestDatabase db;
  running(db, "T");
  std::string j =
      db.scalar("INSERT INTO jobd.job (job_type, target) VALUES ('noop', 'T') RETURNING id");
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + j), "f");
  std::string k = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + k), "t");
}

// Under REPEATABLE READ the insert's snapshot cannot see an end that
// commits after it began: such an insert is a head.
TEST(TargetQueueTest, AnInsertUnderRepeatableReadIsAHead) {
  TestDatabase db;
  running(db, "T");
  auto conn = db.connect();
  pqxx::transaction<pqxx::repeatable_read> txn(*conn);
  std::string j = txn.exec1("SELECT jobd.enqueue('noop', target => 'T')")[0].as<std::string>();
  txn.commit();
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + j), "f");
}

// jobd.acquire's caller holds the WAITING job it gets back until it
// commits. The daemon's end of the job in front must not wait for that
// caller (schema 8), and the job must not be left behind with nothing in
// front: acquire makes it a head.
TEST(TargetQueueTest, AnEndDoesNotWaitForACallerOfAcquire) {
  TestDatabase db;
  std::string r = running(db, "T");
  std::string j = db.scalar("SELECT jobd.acquire('noop', 'T')");
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + j), "t");
  auto web_conn = db.connect();
  pqxx::work web(*web_conn);
  EXPECT_EQ(web.exec1("SELECT jobd.acquire('noop', 'T')")[0].as<std::string>(), j);
  auto daemon_conn = db.connect();
  pqxx::work daemon(*daemon_conn);
  daemon.exec("SET LOCAL lock_timeout = '5s'");
  daemon.exec("UPDATE jobd.job SET status = 2 WHERE id = " + r);
  daemon.commit();
  web.commit();
  auto conn = db.connect();
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{j});
}

// What a race leaves to the sweep of the rescue pass
// (jobd.promote_stranded): a caller of jobd.acquire who rolls back after
// the end of the job in front passed over the job it held.
TEST(TargetQueueTest, ACallerOfAcquireWhoRollsBackLeavesTheQueueToTheSweep) {
  TestDatabase db;
  std::string r = running(db, "T");
  std::string j = db.scalar("SELECT jobd.acquire('noop', 'T')");
  auto web_conn = db.connect();
  pqxx::work web(*web_conn);
  EXPECT_EQ(web.exec1("SELECT jobd.acquire('noop', 'T')")[0].as<std::string>(), j);
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + r);
  web.abort();
  auto conn = db.connect();
  EXPECT_TRUE(claimIds(*conn, 10).empty());
  EXPECT_EQ(db.scalar("SELECT jobd.promote_stranded()"), "1");
  EXPECT_EQ(db.scalar("SELECT jobd.promote_stranded()"), "0");
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{j});
}

// ... and the end of the job in front inside a REPEATABLE READ transaction
// (a sql job's own may be), whose snapshot cannot see a job that was
// inserted behind after it began.
TEST(TargetQueueTest, AnEndUnderRepeatableReadLeavesTheQueueToTheSweep) {
  TestDatabase db;
  std::string r = running(db, "T");
  auto job_conn = db.connect();
  pqxx::transaction<pqxx::repeatable_read> job(*job_conn);
  job.exec("SELECT 1");
  std::string j = db.scalar("SELECT jobd.enqueue('noop', target => 'T')");
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + j), "t");
  job.exec("UPDATE jobd.job SET status = 2 WHERE id = " + r);
  job.commit();
  auto conn = db.connect();
  EXPECT_TRUE(claimIds(*conn, 10).empty());
  EXPECT_EQ(db.scalar("SELECT jobd.promote_stranded()"), "1");
  EXPECT_EQ(claimIds(*conn, 10), std::vector<std::string>{j});
}

// The sweep reads one entry per queue that has jobs behind, not every job.
TEST(TargetQueueTest, TheSweepReadsOneEntryPerQueue) {
  TestDatabase db;
  for (const char* target : {"A", "B", "C"}) {
    running(db, target);
    db.scalar(std::string("SELECT count(jobd.enqueue('noop', target => '") + target +
              "')) FROM generate_series(1, 3000)");
  }
  db.scalar("ANALYZE jobd.job");
  auto conn = db.connect();
  pqxx::work txn(*conn);
  EXPECT_EQ(txn.exec1("SELECT jobd.promote_stranded()")[0].as<int>(), 0);
  pqxx::row read = txn.exec1(
      "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_user_tables "
      "WHERE relid = 'jobd.job'::regclass");
  EXPECT_EQ(read[0].as<int>(), 0);
  EXPECT_LE(read[1].as<int>(), 100);
}

// Version 6's wake-up for a freed target read every job waiting on it, at
// the end of each of that target's jobs; it reads one entry per type now.
TEST(TargetQueueTest, TheEndOfATargetsJobReadsOneEntryPerWaitingType) {
  TestDatabase db;
  std::string r = running(db, "T");
  db.scalar("SELECT count(jobd.enqueue('noop', target => 'T')) FROM generate_series(1, 5000)");
  db.scalar("SELECT count(jobd.enqueue('diff', target => 'T')) FROM generate_series(1, 5000)");
  db.scalar("ANALYZE jobd.job");
  auto conn = db.connect();
  pqxx::work txn(*conn);
  txn.exec("UPDATE jobd.job SET status = 2 WHERE id = " + r);
  pqxx::row read = txn.exec1(
      "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_user_tables "
      "WHERE relid = 'jobd.job'::regclass");
  EXPECT_EQ(read[0].as<int>(), 0);
  EXPECT_LE(read[1].as<int>(), 100);
}

// What README ("Upgrading", schema 12) and docs/schema.md promise of the
// privileges an application's role needs: INSERT on jobd.job and SELECT of
// its id (for RETURNING) enqueue without a target; with a target, the
// probes for a job in front need SELECT on jobd.job, and the check at
// COMMIT, which makes a job a head when what it was behind has ended
// meanwhile, UPDATE of its `behind` column.
TEST(TargetQueueTest, ATargetedEnqueueNeedsSelectAndUpdateOfBehind) {
  TestDatabase db;
  const std::string role = "jobd_enqueuer_" + db.name();
  db.scalar("CREATE ROLE " + role + " NOLOGIN; GRANT USAGE ON SCHEMA jobd TO " + role +
            "; GRANT INSERT, SELECT (id) ON jobd.job TO " + role);
  auto conn = db.connect();
  // Enqueues as the role, behind a RUNNING job of target that ends before
  // the COMMIT when ends_first.
  auto enqueueAs = [&](const std::string& target, bool ends_first) {
    std::string in_front = target.empty() ? "" : running(db, target);
    pqxx::work txn(*conn);
    txn.exec("SET LOCAL ROLE " + role);
    std::string id = txn.exec1("SELECT jobd.enqueue('noop', target => " +
                               (target.empty() ? std::string("NULL") : txn.quote(target)) + ")")[0]
                         .c_str();
    if (ends_first) {
      db.scalar(
          "UPDATE jobd.job SET status = 2, date_finished = now(), lease_expires = NULL "
          "WHERE id = " +
          in_front);
    }
    txn.commit();  // the check of a job behind runs here
    return id;
  };
  EXPECT_NO_THROW(enqueueAs("", false));
  EXPECT_THROW(enqueueAs("T1", false), pqxx::insufficient_privilege);
  db.scalar("GRANT SELECT ON jobd.job TO " + role);
  std::string behind;
  ASSERT_NO_THROW(behind = enqueueAs("T2", false));
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + behind), "t");
  EXPECT_THROW(enqueueAs("T3", true), pqxx::insufficient_privilege);
  db.scalar("GRANT UPDATE (behind) ON jobd.job TO " + role);
  std::string head;
  ASSERT_NO_THROW(head = enqueueAs("T4", true));
  EXPECT_EQ(db.scalar("SELECT behind FROM jobd.job WHERE id = " + head), "f");
  db.scalar("DROP OWNED BY " + role + "; DROP ROLE " + role);
}

}  // namespace
}  // namespace jobd::store
