#include <gtest/gtest.h>

#include <future>
#include <pqxx/pqxx>
#include <string>

#include "runtime/database_thread.hpp"
#include "store/database.hpp"
#include "store/runtime_store.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

// Regression (the half-open scenario of the reliability suite): libpqxx 6
// reopened a broken connection by itself behind the same object, and a
// daemon thread then waited for ever on a socket its watchdog had already
// counted as closed. A connection of jobd's stays broken until jobd opens
// another one.
TEST(ConnectionTest, ABrokenConnectionIsNeverReopenedBehindTheCaller) {
  TestDatabase db;
  auto conn = store::connect(db.conninfo(), "jobd test");
  int pid = conn->backendpid();
  ASSERT_EQ(db.scalar("SELECT pg_terminate_backend(" + std::to_string(pid) + ")"), "t");
  auto query = [&] {
    pqxx::nontransaction txn(*conn);
    return txn.exec1("SELECT pg_backend_pid()")[0].as<int>();
  };
  // libpqxx's own reconnection answered by the third try, from a new
  // backend.
  for (int attempt = 1; attempt <= 3; ++attempt) {
    EXPECT_THROW(query(), pqxx::broken_connection) << "attempt " << attempt;
  }
  EXPECT_FALSE(conn->is_open());
}

// The settings every jobd session makes (store::configure), on a
// connection opened without them.
TEST(ConnectionTest, ConfigureNamesTheSessionAndSetsUtc) {
  TestDatabase db;
  auto conn = store::open(db.conninfo());
  store::configure(*conn, "jobd test");
  pqxx::nontransaction txn(*conn);
  pqxx::row row =
      txn.exec1("SELECT current_setting('application_name'), current_setting('TimeZone')");
  EXPECT_EQ(row[0].as<std::string>(), "jobd test");
  EXPECT_EQ(row[1].as<std::string>(), "UTC");
}

// On the default plan_cache_mode PostgreSQL switches a prepared statement to
// a generic plan after five runs when that looks no dearer, made from the
// statistics of that moment: a daemon started on an idle queue had its claim
// planned from an empty table's, read jobd.job by sequential scans, and took
// 630 ms a claim once 200,000 jobs came, until the next ANALYZE (issue 17).
// The claim now keeps a plan of its own (jobd.claim_ready); every statement
// the daemon prepares on its connections is planned for its parameters.
TEST(ConnectionTest, TheDaemonsPreparedStatementsArePlannedForEachRun) {
  TestDatabase db;
  db.scalar("ANALYZE jobd.job");  // the statistics of an empty queue
  runtime::DatabaseThread thread(db.conninfo(), "test-owner");
  thread.start();
  std::promise<std::string> plans;
  thread.post([&] {
    for (int i = 0; i < 8; ++i) {
      thread.use("CLAIM_FAILED", [](RuntimeStore& store) {
        store.claim({"noop", "noop", 8});
        store.nextScheduledIn("noop");
      });
    }
    try {
      pqxx::nontransaction q(*thread.connection());
      pqxx::row row = q.exec1(
          "SELECT sum(generic_plans) || ' generic, ' || sum(custom_plans) || ' custom' "
          "FROM pg_prepared_statements "
          "WHERE name IN ('job_claim_ready', 'job_next_scheduled')");
      plans.set_value(row[0].as<std::string>());
    } catch (const std::exception& e) {
      plans.set_value(e.what());
    }
  });
  EXPECT_EQ(plans.get_future().get(), "0 generic, 16 custom");
  thread.stop();
}

}  // namespace
}  // namespace jobd::store
