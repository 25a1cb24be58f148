#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <pqxx/notification>

#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

// Collects every notification on channel jobd until a sentinel arrives.
class Listener : public pqxx::notification_receiver {
 public:
  explicit Listener(pqxx::connection_base& conn) : pqxx::notification_receiver(conn, "jobd") {
    conn.get_notifs();
  }
  void operator()(const std::string& payload, int) override { payloads.push_back(payload); }

  // Sends NOTIFY jobd, 'sentinel' from another connection after the
  // transactions under test: notifications arrive in commit order, so once
  // the sentinel is here, everything before it is too.
  std::map<std::string, int> drain(const TestDatabase& db) {
    db.scalar("SELECT pg_notify('jobd', 'sentinel')");
    for (int waited = 0; waited < 100; ++waited) {
      conn().await_notification(0, 100000);
      if (!payloads.empty() && payloads.back() == "sentinel") {
        break;
      }
    }
    EXPECT_FALSE(payloads.empty());
    EXPECT_EQ(payloads.back(), "sentinel");
    std::map<std::string, int> counts;
    for (const std::string& p : payloads) {
      if (p != "sentinel") {
        ++counts[p];
      }
    }
    payloads.clear();
    return counts;
  }

  std::vector<std::string> payloads;
};

// 1,000 inserts in one transaction, each its own statement: one notification.
TEST(NotifyTest, ThousandInsertsOneNotification) {
  TestDatabase db;
  auto listen_conn = db.connect();
  Listener listener(*listen_conn);
  auto conn = db.connect();
  pqxx::work txn(*conn);
  for (int i = 0; i < 1000; ++i) {
    txn.exec_params("INSERT INTO jobd.job (job_type, json_data) VALUES ('noop', $1)",
                    "{\"i\": " + std::to_string(i) + "}");
  }
  txn.commit();
  EXPECT_EQ(listener.drain(db), (std::map<std::string, int>{{"noop", 1}}));
}

// A rolled-back transaction delivers nothing.
TEST(NotifyTest, RollbackDeliversNothing) {
  TestDatabase db;
  auto listen_conn = db.connect();
  Listener listener(*listen_conn);
  auto conn = db.connect();
  {
    pqxx::work txn(*conn);
    txn.exec("SELECT jobd.enqueue('noop')");
    txn.abort();
  }
  EXPECT_TRUE(listener.drain(db).empty());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job"), "0");
}

// Two types in one transaction: one notification per type, payload = type.
TEST(NotifyTest, OnePerTypePerTransaction) {
  TestDatabase db;
  auto listen_conn = db.connect();
  Listener listener(*listen_conn);
  auto conn = db.connect();
  pqxx::work txn(*conn);
  txn.exec("INSERT INTO jobd.job (job_type) SELECT 'email' FROM generate_series(1, 50)");
  txn.exec("SELECT jobd.enqueue('diff') FROM generate_series(1, 50)");
  txn.exec("INSERT INTO jobd.job (job_type) VALUES ('email')");
  txn.commit();
  EXPECT_EQ(listener.drain(db), (std::map<std::string, int>{{"diff", 1}, {"email", 1}}));
}

// Going back to WAITING notifies; a claim or a completion does not; an
// insert of a non-WAITING row does not.
TEST(NotifyTest, RequeueNotifiesClaimDoesNot) {
  TestDatabase db;
  std::string id = db.scalar("SELECT jobd.enqueue('noop')");
  db.scalar("INSERT INTO jobd.job (job_type, status) VALUES ('finished', 2)");
  auto listen_conn = db.connect();
  Listener listener(*listen_conn);
  db.scalar("UPDATE jobd.job SET status = 1 WHERE id = " + id);
  db.scalar("UPDATE jobd.job SET status = 2 WHERE id = " + id);
  EXPECT_TRUE(listener.drain(db).empty());
  db.scalar("UPDATE jobd.job SET status = 0 WHERE id = " + id);
  EXPECT_EQ(listener.drain(db), (std::map<std::string, int>{{"noop", 1}}));
}

}  // namespace
}  // namespace jobd::store
