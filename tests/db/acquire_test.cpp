#include <gtest/gtest.h>

#include <barrier>
#include <thread>
#include <vector>

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

// Two transactions racing on one type and target: the second waits for the
// first to commit, then returns its job, so exactly one job is WAITING.
TEST(AcquireTest, TwoTransactionsRace) {
  TestDatabase db;
  auto first_conn = db.connect();
  pqxx::work first(*first_conn);
  std::int64_t first_id = acquire(first, "diff", "mp:7");

  std::int64_t second_id = 0;
  std::string second_error;
  std::thread second([&] {
    try {
      auto conn = db.connect();
      pqxx::work txn(*conn);
      second_id = acquire(txn, "diff", "mp:7");
      txn.commit();
    } catch (const std::exception& e) {
      second_error = e.what();
    }
  });
  // Commit only once the second transaction is queued on the lock, so that
  // the race is real rather than a matter of scheduling.
  auto watcher = db.connect();
  for (;;) {
    pqxx::nontransaction q(*watcher);
    if (q.exec("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0]
            .as<int>() > 0) {
      break;
    }
    q.exec("SELECT pg_sleep(0.01)");
  }
  first.commit();
  second.join();
  EXPECT_EQ(second_error, "");
  EXPECT_EQ(second_id, first_id);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND target = 'mp:7'"), "1");
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
