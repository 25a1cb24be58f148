// `oops_dir` (SPEC §3): every OOPS, whatever raised it, is also filed as
// JSON under <oops_dir>/<UTC day>/<id>, the same report as its jobd.oops row.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;

// A failed attempt's OOPS, the NoticeError of its notice that could not be
// sent (nothing listens on port 1), and a rescue's LeaseExpired: three rows,
// three files, each with its row's type, value, job and reporter. Before
// issue 17 only the first reached oops_dir.
TEST(OopsFileTest, EveryOopsIsFiledInOopsDir) {
  TestDatabase db;
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / ("oops_" + db.name());
  std::filesystem::remove_all(dir);
  Daemon daemon(db, "[jobd]\npoll_interval: 1s\nrescue_interval: 1s\noops_dir: " + dir.string() +
                        R"(
[mail]
smtp_url: smtp://127.0.0.1:1
from_address: jobd@example.com
[fail]
error_recipients: ops@example.com
)");
  ASSERT_TRUE(daemon.waitReady());
  db.scalar(R"(SELECT jobd.enqueue('fail', '{"error": "oops", "message": "boom"}'))");
  db.scalar(
      "INSERT INTO jobd.job (job_type, status, attempt_count, lease_owner, lease_expires, "
      "date_started) VALUES ('fail', 1, 1, 'gone:1:0000', now() - interval '1 minute', now())");
  ASSERT_EQ(waitForValue(db, "SELECT string_agg(type, ',' ORDER BY type) FROM jobd.oops",
                         "FailError,LeaseExpired,NoticeError", 30s),
            "FailError,LeaseExpired,NoticeError")
      << daemon.log();
  EXPECT_EQ(daemon.stop().exit_code, 0);

  auto conn = db.connect();
  pqxx::nontransaction txn(*conn);
  pqxx::result rows = txn.exec(
      "SELECT id, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD'), type, value, job_id, "
      "reporter, vars::text FROM jobd.oops");
  ASSERT_EQ(rows.size(), 3U);
  for (const pqxx::row& row : rows) {
    std::filesystem::path file = dir / row[1].c_str() / row[0].c_str();
    SCOPED_TRACE(file.string());
    std::ifstream in(file);
    ASSERT_TRUE(in.good());
    nlohmann::json report = nlohmann::json::parse(in);
    EXPECT_EQ(report["id"], row[0].c_str());
    EXPECT_EQ(report["type"], row[2].c_str());
    EXPECT_EQ(report["value"], row[3].c_str());
    EXPECT_EQ(report["job_id"], row[4].as<std::int64_t>());
    EXPECT_EQ(report["reporter"], row[5].c_str());
    EXPECT_EQ(report["vars"], nlohmann::json::parse(row[6].c_str()));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace jobd
