#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <pqxx/notification>
#include <thread>
#include <vector>

#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

// Collects every notification on channel jobd until a sentinel arrives.
// Asleep on the given types (a daemon with nothing to do, as
// jobd.sleep_on makes it): enqueues of them notify.
class Listener : public pqxx::notification_receiver {
 public:
  explicit Listener(pqxx::connection_base& conn,
                    const std::vector<std::string>& asleep_on = {"noop", "email", "diff"})
      : pqxx::notification_receiver(conn, "jobd") {
    pqxx::nontransaction txn(conn);
    for (const std::string& type : asleep_on) {
      EXPECT_TRUE(txn.exec_params1("SELECT jobd.sleep_on($1, false)", type)[0].as<bool>());
    }
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

// The quiet enqueue (migration 9): with no daemon asleep on a type, its
// enqueues send no NOTIFY (a NOTIFY serialises commits cluster-wide); once
// one sleeps they do; and it lets go when busy again.
TEST(NotifyTest, EnqueuesNotifyOnlyWhileADaemonSleepsOnTheType) {
  TestDatabase db;
  auto listen_conn = db.connect();
  Listener listener(*listen_conn, {});
  db.scalar("SELECT jobd.enqueue('noop')");
  EXPECT_TRUE(listener.drain(db).empty());

  auto daemon_conn = db.connect();
  pqxx::nontransaction daemon(*daemon_conn);
  EXPECT_TRUE(daemon.exec("SELECT jobd.sleep_on('noop', false)")[0][0].as<bool>());
  db.scalar("SELECT jobd.enqueue('noop')");
  db.scalar("SELECT jobd.enqueue('other')");
  EXPECT_EQ(listener.drain(db), (std::map<std::string, int>{{"noop", 1}}));
  // Asleep already: it stays so, holding the lock once.
  EXPECT_TRUE(daemon.exec("SELECT jobd.sleep_on('noop', true)")[0][0].as<bool>());
  daemon.exec("SELECT jobd.wake_from('noop')");
  db.scalar("SELECT jobd.enqueue('noop')");
  EXPECT_TRUE(listener.drain(db).empty());
  // A second daemon asleep, the first gone: the enqueues still notify.
  EXPECT_TRUE(daemon.exec("SELECT jobd.sleep_on('noop', false)")[0][0].as<bool>());
  auto other_conn = db.connect();
  pqxx::nontransaction other(*other_conn);
  EXPECT_TRUE(other.exec("SELECT jobd.sleep_on('noop', false)")[0][0].as<bool>());
  daemon.exec("SELECT jobd.wake_from('noop')");
  db.scalar("SELECT jobd.enqueue('noop')");
  EXPECT_EQ(listener.drain(db), (std::map<std::string, int>{{"noop", 1}}));
  // A session that ends lets go with it.
  other_conn.reset();
  db.scalar("SELECT jobd.enqueue('noop')");
  EXPECT_TRUE(listener.drain(db).empty());
}

// The handshake that loses no wake-up: a daemon cannot fall asleep while an
// enqueue of the type is in flight (that enqueue probed before the daemon
// slept, and sends nothing); it polls instead, and sleeps once the enqueue
// has committed, when its next claim sees the job.
TEST(NotifyTest, NoDaemonFallsAsleepWhileAnEnqueueIsInFlight) {
  TestDatabase db;
  auto listen_conn = db.connect();
  Listener listener(*listen_conn, {});
  auto web_conn = db.connect();
  pqxx::work web(*web_conn);
  web.exec("SELECT jobd.enqueue('noop')");

  auto daemon_conn = db.connect();
  pqxx::nontransaction daemon(*daemon_conn);
  EXPECT_FALSE(daemon.exec("SELECT jobd.sleep_on('noop', false)")[0][0].as<bool>());
  EXPECT_TRUE(daemon.exec("SELECT jobd.sleep_on('other', false)")[0][0].as<bool>());
  web.commit();
  EXPECT_TRUE(listener.drain(db).empty());
  EXPECT_TRUE(daemon.exec("SELECT jobd.sleep_on('noop', false)")[0][0].as<bool>());
  // Asleep: an enqueue now notifies, whatever its isolation level.
  {
    pqxx::work late(*web_conn);
    late.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    late.exec("SELECT jobd.enqueue('noop')");
    late.commit();
  }
  EXPECT_EQ(listener.drain(db), (std::map<std::string, int>{{"noop", 1}}));
  // Asleep, and an enqueue in flight: it lets go, and that enqueue (which
  // probed while it slept) notifies.
  pqxx::work again(*web_conn);
  again.exec("SELECT jobd.enqueue('noop')");
  EXPECT_FALSE(daemon.exec("SELECT jobd.sleep_on('noop', true)")[0][0].as<bool>());
  again.commit();
  EXPECT_EQ(listener.drain(db), (std::map<std::string, int>{{"noop", 1}}));
  db.scalar("SELECT jobd.enqueue('noop')");
  EXPECT_TRUE(listener.drain(db).empty());
}

}  // namespace
}  // namespace jobd::store
