// Dependencies and batches (schema 19, issue 21): a held job is never
// claimed and wakes no daemon; the races that the row locks of
// jobd.job_hold and jobd.batch close are played out here on two
// connections, in the order that would lose a job or fire a callback twice
// without them.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>

#include "core/errors.hpp"
#include "store/job_repository.hpp"
#include "store/job_store.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

std::set<std::int64_t> claimIds(pqxx::connection& conn, const std::string& type) {
  JobRepository repo(conn, "test-owner");
  std::set<std::int64_t> ids;
  for (const runtime::ClaimedJob& job : repo.claim({type, type, 100}).jobs) {
    ids.insert(job.id);
  }
  return ids;
}

std::int64_t id(const std::string& text) {
  return std::stoll(text);
}

// Runs sql in a transaction on its own connection from another thread, and
// says whether it is still waiting after a while (for a lock this thread
// holds) before it is let through.
class Blocked {
 public:
  Blocked(const TestDatabase& db, const std::string& sql)
      : conn_(db.connect()), result_(std::async(std::launch::async, [this, sql] {
          pqxx::work txn(*conn_);
          std::string value = txn.exec(sql)[0][0].c_str();
          txn.commit();
          return value;
        })) {}
  bool stillWaiting() {
    return result_.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout;
  }
  std::string get() { return result_.get(); }

 private:
  std::unique_ptr<pqxx::connection> conn_;
  std::future<std::string> result_;
};

TEST(DependencyTest, AHeldJobIsNeverClaimedAndSetsNoWakeUp) {
  TestDatabase db;
  std::string parent = db.scalar("SELECT jobd.enqueue('p')");
  std::string child =
      db.scalar("SELECT jobd.add_dependencies(jobd.enqueue('c'), ARRAY[" + parent + "], 'fail')");
  auto conn = db.connect();
  EXPECT_TRUE(claimIds(*conn, "c").empty());
  // 'infinity' is not a time to wake at (and would overflow the interval).
  JobRepository repo(*conn, "test-owner");
  EXPECT_FALSE(repo.nextScheduledIn("c").has_value());
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + parent + " RETURNING 1");
  EXPECT_EQ(claimIds(*conn, "c"), (std::set<std::int64_t>{id(child)}));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_hold"), "0");
}

// A child whose two parents end at once in two transactions: the second
// waits for the first's decrement of the hold and sees the count reach
// zero. (Counting pending edges in each transaction's snapshot instead
// would leave the child held forever.)
TEST(DependencyTest, TwoParentsEndingAtOnceFreeTheirChild) {
  TestDatabase db;
  std::string p1 = db.scalar("SELECT jobd.enqueue('p')");
  std::string p2 = db.scalar("SELECT jobd.enqueue('p')");
  std::string child = db.scalar(
      "SELECT jobd.add_dependencies(jobd.enqueue('c', scheduled_start "
      "=> '2001-01-01'), ARRAY[" +
      p1 + ", " + p2 + "])");
  auto first = db.connect();
  pqxx::work txn(*first);
  txn.exec("UPDATE jobd.job SET status = 2 WHERE id = " + p1);
  Blocked second(db, "UPDATE jobd.job SET status = 2 WHERE id = " + p2 + " RETURNING id");
  EXPECT_TRUE(second.stillWaiting());
  txn.commit();
  EXPECT_EQ(second.get(), p2);
  // Freed, due from now (the start it asked for has passed).
  EXPECT_EQ(db.scalar("SELECT scheduled_start > '2001-01-01' AND scheduled_start <= now() FROM "
                      "jobd.job WHERE id = " +
                      child),
            "t");
  auto conn = db.connect();
  EXPECT_EQ(claimIds(*conn, "c"), (std::set<std::int64_t>{id(child)}));
}

// An edge to a parent that is ending: the add waits for the parent's row,
// then sees it COMPLETED and does not hold the child.
TEST(DependencyTest, AnEdgeToAParentThatEndsMeanwhileIsMetAtOnce) {
  TestDatabase db;
  std::string parent = db.scalar("SELECT jobd.enqueue('p')");
  auto ending = db.connect();
  pqxx::work txn(*ending);
  txn.exec("UPDATE jobd.job SET status = 2 WHERE id = " + parent);
  Blocked add(db, "SELECT jobd.add_dependencies(jobd.enqueue('c'), ARRAY[" + parent + "])");
  EXPECT_TRUE(add.stillWaiting());
  txn.commit();
  std::string child = add.get();
  EXPECT_EQ(db.scalar("SELECT state FROM jobd.job_dependency WHERE child_id = " + child), "met");
  auto conn = db.connect();
  EXPECT_EQ(claimIds(*conn, "c"), (std::set<std::int64_t>{id(child)}));
}

TEST(DependencyTest, FailureRulesApplyTransitivelyAndCyclesAreRefused) {
  TestDatabase db;
  std::string a = db.scalar("SELECT jobd.enqueue('t')");
  std::string fail = db.scalar("SELECT jobd.add_dependencies(jobd.enqueue('t'), ARRAY[" + a + "])");
  std::string cancel =
      db.scalar("SELECT jobd.add_dependencies(jobd.enqueue('t'), ARRAY[" + a + "], 'cancel')");
  std::string run =
      db.scalar("SELECT jobd.add_dependencies(jobd.enqueue('t'), ARRAY[" + a + "], 'run')");
  std::string grandchild =
      db.scalar("SELECT jobd.add_dependencies(jobd.enqueue('t'), ARRAY[" + cancel + "])");
  EXPECT_THROW(db.scalar("SELECT jobd.add_dependencies(" + a + ", ARRAY[" + grandchild + "])"),
               pqxx::sql_error);
  EXPECT_THROW(db.scalar("SELECT jobd.add_dependencies(" + a + ", ARRAY[" + a + "])"),
               pqxx::sql_error);
  // An operator's cancel of the parent.
  auto conn = db.connect();
  JobStore(*conn).apply(id(a), OperatorAction::kCancel, "no longer needed");
  auto line = [&db](const std::string& job) {
    return db.scalar("SELECT status || ' ' || COALESCE(log, '-') FROM jobd.job WHERE id = " + job);
  };
  EXPECT_EQ(line(fail), "3 ParentFailed: parent job " + a + " failed");
  EXPECT_EQ(line(cancel), "3 Cancelled: parent job " + a + " failed");
  EXPECT_EQ(line(run), "0 -");
  EXPECT_EQ(line(grandchild), "3 ParentFailed: parent job " + cancel + " failed");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE scheduled_start = 'infinity'"), "0");
}

// A failure goes down a chain of a thousand generations (walked in a
// loop: a trigger per generation would exceed max_stack_depth), each job
// counted in its batch once.
TEST(DependencyTest, AFailureWalksALongChain) {
  TestDatabase db;
  std::string batch = db.scalar("SELECT jobd.create_batch('done')");
  std::string head = db.scalar("SELECT jobd.enqueue('c')");
  db.scalar(R"sql(
    DO $$
    DECLARE prev bigint := )sql" +
            head + R"sql(;
    BEGIN
      FOR i IN 1..1000 LOOP
        prev := jobd.add_dependencies(jobd.add_to_batch()sql" +
            batch + R"sql(, jobd.enqueue('c')), ARRAY[prev]);
      END LOOP;
    END $$)sql");
  db.scalar("UPDATE jobd.job SET status = 3 WHERE id = " + head + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 3 AND log LIKE "
                      "'ParentFailed: parent job % failed'"),
            "1000");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_dependency WHERE state <> 'failed'"), "0");
  db.scalar("SELECT jobd.close_batch(" + batch + ")");
  EXPECT_EQ(db.scalar("SELECT json_data->'batch'->>'failed' FROM jobd.job WHERE job_type = 'done'"),
            "1000");
}

// Two parents failing in one statement (an outcome batch, the rescue) on a
// connection that never walked a failure before: each fails its child.
// (The walk's flag, unset in a new session, once stayed on after the
// first walk and the second parent's trigger skipped its edges.)
TEST(DependencyTest, TwoFailuresInOneStatementBothFailTheirChildren) {
  TestDatabase db;
  std::string p1 = db.scalar("SELECT jobd.enqueue('p')");
  std::string p2 = db.scalar("SELECT jobd.enqueue('p')");
  std::string c1 = db.scalar("SELECT jobd.add_dependencies(jobd.enqueue('c'), ARRAY[" + p1 + "])");
  std::string c2 = db.scalar("SELECT jobd.add_dependencies(jobd.enqueue('c'), ARRAY[" + p2 + "])");
  auto fresh = db.connect();
  pqxx::work txn(*fresh);
  txn.exec("UPDATE jobd.job SET status = 3 WHERE id IN (" + p1 + ", " + p2 + ")");
  txn.commit();
  EXPECT_EQ(
      db.scalar("SELECT string_agg(status::text, ',' ORDER BY id) FROM jobd.job WHERE id IN (" +
                c1 + ", " + c2 + ")"),
      "3,3");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_dependency WHERE state = 'pending'"), "0");
}

// An operator's cancel of a held job ends its hold and gives it back the
// start it asked for.
TEST(DependencyTest, ACancelledHeldJobIsHeldNoMore) {
  TestDatabase db;
  std::string parent = db.scalar("SELECT jobd.enqueue('p')");
  std::string child =
      db.scalar("SELECT jobd.add_dependencies(jobd.enqueue('c'), ARRAY[" + parent + "])");
  auto conn = db.connect();
  JobStore(*conn).apply(id(child), OperatorAction::kCancel, "not wanted");
  EXPECT_EQ(db.scalar("SELECT status || ' ' || COALESCE(scheduled_start::text, '-') || ' ' || "
                      "(SELECT count(*) FROM jobd.job_hold) FROM jobd.job WHERE id = " +
                      child),
            "3 - 0");
  EXPECT_EQ(db.scalar("SELECT state FROM jobd.job_dependency WHERE child_id = " + child), "failed");
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + parent + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + child), "3");
}

// An operator's retry of a held job resets its start but keeps it held;
// a parent deleted before it ended no longer holds it.
TEST(DependencyTest, RetryKeepsTheHoldAndADeletedParentReleasesIt) {
  TestDatabase db;
  std::string parent = db.scalar("SELECT jobd.enqueue('p')");
  std::string child = db.scalar(
      "SELECT jobd.add_dependencies(jobd.enqueue('c', scheduled_start => now() + interval '1 "
      "day'), ARRAY[" +
      parent + "])");
  auto conn = db.connect();
  JobStore(*conn).apply(id(child), OperatorAction::kRetry, "");
  EXPECT_TRUE(claimIds(*conn, "c").empty());
  EXPECT_EQ(db.scalar("SELECT scheduled_start IS NULL FROM jobd.job_hold"), "t");
  db.scalar("DELETE FROM jobd.job WHERE id = " + parent + " RETURNING 1");
  EXPECT_EQ(claimIds(*conn, "c"), (std::set<std::int64_t>{id(child)}));
}

// The last two jobs of a closed batch end at once: the second waits for
// the first's count and alone enqueues the callback.
TEST(BatchTest, TheLastTwoJobsEndingAtOnceFireTheCallbackOnce) {
  TestDatabase db;
  std::string batch = db.scalar("SELECT jobd.create_batch('done', '{\"n\": 1}')");
  std::string j1 = db.scalar("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))");
  std::string j2 = db.scalar("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))");
  EXPECT_EQ(db.scalar("SELECT jobd.close_batch(" + batch + ") IS NULL"), "t");
  auto first = db.connect();
  pqxx::work txn(*first);
  txn.exec("UPDATE jobd.job SET status = 2 WHERE id = " + j1);
  Blocked second(db, "UPDATE jobd.job SET status = 3 WHERE id = " + j2 + " RETURNING id");
  EXPECT_TRUE(second.stillWaiting());
  txn.commit();
  second.get();
  EXPECT_EQ(db.scalar("SELECT count(*) || ' ' || min(json_data::text) FROM jobd.job WHERE "
                      "job_type = 'done'"),
            "1 {\"n\": 1, \"batch\": {\"id\": " + batch +
                ", \"total\": 2, \"failed\": 1, \"completed\": 1}}");
  // Ends after the callback (an operator's retry and a new end) fire
  // nothing more.
  db.scalar("UPDATE jobd.job SET status = 0 WHERE id = " + j2 + " RETURNING 1");
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + j2 + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'done'"), "1");
}

// Many rounds of two jobs ending at the same moment on two connections.
TEST(BatchTest, RacingEndsNeverFireTwiceOrNever) {
  TestDatabase db;
  for (int round = 0; round < 20; ++round) {
    std::string batch = db.scalar("SELECT jobd.create_batch('done_" + std::to_string(round) + "')");
    std::string j1 = db.scalar("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))");
    std::string j2 = db.scalar("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))");
    db.scalar("SELECT jobd.close_batch(" + batch + ")");
    std::atomic<int> ready{0};
    auto end = [&db, &ready](const std::string& job) {
      auto conn = db.connect();
      ready.fetch_add(1);
      while (ready.load() < 2) {
        std::this_thread::yield();
      }
      pqxx::work txn(*conn);
      txn.exec("UPDATE jobd.job SET status = 2 WHERE id = " + job);
      txn.commit();
    };
    std::thread a(end, j1);
    std::thread b(end, j2);
    a.join();
    b.join();
    EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'done_" +
                        std::to_string(round) + "'"),
              "1")
        << "round " << round;
  }
}

// A job added while the batch closes: the close waits for the add's
// COMMIT and counts its job, so the callback waits for it too.
TEST(BatchTest, ACloseWaitsForTheJobsBeingAdded) {
  TestDatabase db;
  std::string batch = db.scalar("SELECT jobd.create_batch('done')");
  auto adding = db.connect();
  pqxx::work txn(*adding);
  std::string job =
      txn.exec("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))")[0][0].c_str();
  Blocked close(db, "SELECT jobd.close_batch(" + batch + ") IS NULL");
  EXPECT_TRUE(close.stillWaiting());
  txn.commit();
  EXPECT_EQ(close.get(), "t");  // nothing fired: the job has not ended
  EXPECT_EQ(db.scalar("SELECT total FROM jobd.batch WHERE id = " + batch), "1");
  EXPECT_THROW(db.scalar("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))"),
               pqxx::sql_error);
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + job + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'done'"), "1");
}

// The cleaner deletes ended jobs after keep_finished: their ends stay
// counted (a success batch with a failure never fires). A job deleted by
// hand before it ended leaves the batch, whose callback stops waiting.
TEST(BatchTest, DeletedJobsKeepTheirEndsCounted) {
  TestDatabase db;
  std::string batch = db.scalar("SELECT jobd.create_batch('done', fire_on => 'success')");
  std::string failed = db.scalar("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))");
  std::string waiting = db.scalar("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))");
  db.scalar("UPDATE jobd.job SET status = 3 WHERE id = " + failed + " RETURNING 1");
  db.scalar("DELETE FROM jobd.job WHERE id = " + failed + " RETURNING 1");
  db.scalar("SELECT jobd.close_batch(" + batch + ")");
  EXPECT_EQ(db.scalar("SELECT total || ' ' || completed || ' ' || failed FROM jobd.batch"),
            "2 0 1");
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + waiting + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'done'"), "0");

  std::string other = db.scalar("SELECT jobd.create_batch('done')");
  std::string gone = db.scalar("SELECT jobd.add_to_batch(" + other + ", jobd.enqueue('m'))");
  db.scalar("SELECT jobd.close_batch(" + other + ")");
  db.scalar("DELETE FROM jobd.job WHERE id = " + gone + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT count(*) || ' ' || min(json_data->'batch'->>'total') FROM jobd.job "
                      "WHERE job_type = 'done'"),
            "1 0");
}

// An operator's retry of an ended job takes its end back: the callback
// waits for its new end, and counts that one.
TEST(BatchTest, ARetriedJobIsWaitedForAgain) {
  TestDatabase db;
  std::string batch = db.scalar("SELECT jobd.create_batch('done')");
  std::string a = db.scalar("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))");
  std::string b = db.scalar("SELECT jobd.add_to_batch(" + batch + ", jobd.enqueue('m'))");
  db.scalar("SELECT jobd.close_batch(" + batch + ")");
  db.scalar("UPDATE jobd.job SET status = 3 WHERE id = " + a + " RETURNING 1");
  auto conn = db.connect();
  JobStore(*conn).apply(id(a), OperatorAction::kRetry, "");
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + b + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'done'"), "0");
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + a + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT json_data->'batch'->>'completed' || ' ' || "
                      "(json_data->'batch'->>'failed') FROM jobd.job WHERE job_type = 'done'"),
            "2 0");
}

// Enqueued into a batch with a parent that has already failed: the job
// joins the batch, then fails, and is counted there.
TEST(BatchTest, AJobWhoseParentHadFailedIsCountedInItsBatch) {
  TestDatabase db;
  std::string parent = db.scalar("SELECT jobd.enqueue('p')");
  db.scalar("UPDATE jobd.job SET status = 3 WHERE id = " + parent + " RETURNING 1");
  std::string batch = db.scalar("SELECT jobd.create_batch('done')");
  auto conn = db.connect();
  EnqueueRequest r;
  r.job_type = "m";
  r.depends_on = {id(parent)};
  r.batch = id(batch);
  std::int64_t child = JobStore(*conn).enqueue(r);
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + std::to_string(child)), "3");
  EXPECT_EQ(db.scalar("SELECT failed FROM jobd.batch"), "1");
}

TEST(BatchTest, TheCliStoreRefusesBadInput) {
  TestDatabase db;
  auto conn = db.connect();
  JobStore store(*conn);
  EXPECT_THROW(store.closeBatch(424242), NotFoundError);
  EXPECT_THROW(store.createBatch({"done", "{}", "sometimes"}), UsageError);
  EXPECT_THROW(store.createBatch({"done", "[1]", "complete"}), DataError);
  EnqueueRequest r;
  r.job_type = "m";
  r.depends_on = {424242};
  EXPECT_THROW(store.enqueue(r), DataError);
  r.depends_on.clear();
  r.batch = 424242;
  EXPECT_THROW(store.enqueue(r), DataError);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job"), "0");
}

}  // namespace
}  // namespace jobd::store
