#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using testing::TestDatabase;
using testing::waitForValue;

constexpr const char* kConfig = R"(
[sleep]
timeout: 1s
[slowsql]
handler: sql
timeout: 1s
statement: SELECT pg_sleep(($1->>'seconds')::float8)
[slowexec]
handler: exec
timeout: 1s
kill_grace: 200ms
command: /bin/sleep 30
[noop]
)";

// Past its timeout a thread job is stopped (a running query is cancelled,
// an exec child killed) and FAILED with the OOPS TimeoutError "Job ran too
// long."; the daemon goes on serving.
TEST(TimeoutTest, ThreadSqlAndExecJobsTimeOut) {
  TestDatabase db;
  Daemon daemon(db, kConfig);
  ASSERT_TRUE(daemon.waitReady());
  std::string sleeper = db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 30000}')");
  std::string query = db.scalar("SELECT jobd.enqueue('slowsql', '{\"seconds\": 30}')");
  std::string child = db.scalar("SELECT jobd.enqueue('slowexec')");
  for (const std::string& id : {sleeper, query, child}) {
    SCOPED_TRACE("job " + id);
    EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "3",
                           std::chrono::seconds(10)),
              "3");
    EXPECT_EQ(db.scalar("SELECT log FROM jobd.job WHERE id = " + id),
              "TimeoutError: Job ran too long.");
    EXPECT_EQ(db.scalar("SELECT type || ': ' || value FROM jobd.oops WHERE job_id = " + id),
              "TimeoutError: Job ran too long.");
    EXPECT_EQ(db.scalar("SELECT outcome FROM jobd.job_attempt WHERE job_id = " + id), "timeout");
    EXPECT_EQ(db.scalar("SELECT date_finished - date_started < interval '5 seconds' FROM jobd.job "
                        "WHERE id = " +
                        id),
              "t");
  }
  std::string after = db.scalar("SELECT jobd.enqueue('noop')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + after, "2"), "2");
  // The cancelled query is not left running on the server.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND query LIKE 'EXECUTE jobd_sql3_%' AND state = 'active'"),
            "0");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
