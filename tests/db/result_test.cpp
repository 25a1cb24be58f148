// Results and waiting (schema 16): a result is written with its job's
// COMPLETED mark and fenced like it; jobd.watch makes the job's end heard
// (NOTIFY jobd_finished) and nobody else's.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "store/job_repository.hpp"
#include "store/runtime_store.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

TEST(ResultSqlTest, AResultIsWrittenWithItsCompletionAndOnlyThen) {
  TestDatabase db;
  db.scalar("SELECT jobd.enqueue('noop') FROM generate_series(1, 2)");
  auto conn = db.connect();
  PostgresStore store(*conn, "test-owner");
  std::vector<runtime::ClaimedJob> claimed = store.claim({"noop", "noop", 10}).jobs;
  ASSERT_EQ(claimed.size(), 2U);
  runtime::JobOutcome done;
  runtime::JobOutcome stale;
  done.job = claimed[0];
  done.result = R"({"x": 1})";
  stale.job = claimed[1];
  stale.job.attempt += 1;  // an attempt this daemon does not hold
  stale.result = R"({"y": 2})";
  OutcomeBatchResult written = store.writeOutcomes({&done, &stale}, {});
  EXPECT_EQ(written.lost, (std::vector<std::int64_t>{claimed[1].id}));
  EXPECT_EQ(db.scalar("SELECT string_agg(job_id || ' ' || result::text, ',') FROM "
                      "jobd.job_result"),
            std::to_string(claimed[0].id) + R"( {"x": 1})");
}

TEST(ResultSqlTest, AJobsOwnTransactionWritesItsResultWithItsMark) {
  TestDatabase db;
  db.scalar("SELECT jobd.enqueue('noop') FROM generate_series(1, 2)");
  auto conn = db.connect();
  PostgresStore store(*conn, "test-owner");
  std::vector<runtime::ClaimedJob> claimed = store.claim({"noop", "noop", 10}).jobs;
  ASSERT_EQ(claimed.size(), 2U);
  auto own = db.connect();
  {
    pqxx::work txn(*own);
    EXPECT_TRUE(JobRepository::completeInJobTransaction(txn, claimed[0], "test-owner",
                                                        std::string(R"([true])")));
    // Another owner's: not marked, nothing written.
    EXPECT_FALSE(JobRepository::completeInJobTransaction(txn, claimed[1], "daemon-b",
                                                         std::string(R"([false])")));
    txn.commit();
  }
  EXPECT_EQ(db.scalar("SELECT string_agg(job_id || ' ' || result::text, ',') FROM "
                      "jobd.job_result"),
            std::to_string(claimed[0].id) + " [true]");
}

// A COMPLETED job that runs again loses its result: the next run's, or
// none, is its result.
TEST(ResultSqlTest, ARetriedJobLosesItsResult) {
  TestDatabase db;
  const std::string id = db.scalar("SELECT jobd.enqueue('noop')");
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + id + " RETURNING 1");
  db.scalar("INSERT INTO jobd.job_result (job_id, result) VALUES (" + id + ", '1') RETURNING 1");
  db.scalar("UPDATE jobd.job SET status = 1 WHERE id = " + id + " RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_result"), "0");
}

TEST(ResultSqlTest, OnlyAWatchedJobsEndIsHeard) {
  TestDatabase db;
  const std::string watched = db.scalar("SELECT jobd.enqueue('noop')");
  const std::string other = db.scalar("SELECT jobd.enqueue('noop')");
  auto listener = db.connect();
  struct Receiver : pqxx::notification_receiver {
    Receiver(pqxx::connection_base& c, std::set<std::string>& heard)
        : pqxx::notification_receiver(c, "jobd_finished"), heard(heard) {}
    void operator()(const std::string& payload, int) override { heard.insert(payload); }
    std::set<std::string>& heard;
  };
  std::set<std::string> heard;
  Receiver receiver(*listener, heard);
  EXPECT_EQ(db.scalar("SELECT jobd.watch(" + watched + ")"), "0");
  EXPECT_EQ(db.scalar("SELECT jobd.watch(999999)"), "");    // no such job
  db.scalar("UPDATE jobd.job SET status = 2 RETURNING 1");  // both finish
  // A sentinel sent after: everything before it has arrived with it.
  db.scalar("SELECT pg_notify('jobd_finished', 'sentinel')");
  for (int i = 0; i < 50 && heard.count("sentinel") == 0; ++i) {
    listener->await_notification(0, 100000);
  }
  EXPECT_EQ(heard, (std::set<std::string>{watched, "sentinel"}));
  // A finished job needs no watching: its status comes back at once.
  EXPECT_EQ(db.scalar("SELECT jobd.watch(" + other + ")"), "2");
  EXPECT_EQ(db.scalar("SELECT waited FROM jobd.job WHERE id = " + other), "f");
}

}  // namespace
}  // namespace jobd::store
