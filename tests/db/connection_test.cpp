#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "store/database.hpp"
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

}  // namespace
}  // namespace jobd::store
