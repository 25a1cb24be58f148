// Database outages (SPEC §6, §8): the test stops and restarts the cluster
// the tests run against (pg_ctlcluster; these tests run alone). The daemon
// keeps running, reconnects with backoff, listens again, keeps pinging the
// watchdog and says in STATUS= that the database is down; every job ends
// COMPLETED and none has its database work done twice.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <cerrno>
#include <cstdlib>

#include <thread>

#include "cluster.hpp"
#include "daemon.hpp"
#include "notify_socket.hpp"

namespace jobd {
namespace {

using testing::clusterCtl;
using testing::ClusterGuard;
using testing::Daemon;
using ::testing::HasSubstr;
using testing::NotifySocket;
using testing::TestDatabase;
using testing::waitForValue;

// Running, and not a zombie waiting to be reaped.
bool alive(pid_t pid) {
  std::optional<testing::ProcStat> stat = testing::procStat(pid);
  return stat && stat->state != 'Z';
}

constexpr const char* kConfig = R"(
[jobd]
poll_interval: 1s
rescue_interval: 1s
[work]
handler: sql
statement: INSERT INTO runs (job_id) SELECT $2 FROM pg_sleep(0.01)
concurrency: 4
lease_duration: 3s
max_retries: 5
retry_delay: 500ms
[noop]
max_retries: 5
retry_delay: 500ms
)";

constexpr const char* kRuns = "CREATE TABLE runs (job_id bigint NOT NULL)";

void expectEveryJobOnce(const TestDatabase& db, int work_jobs) {
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status <> 2", "0",
                         std::chrono::seconds(60)),
            "0")
      << db.scalar(
             "SELECT string_agg(id || ':' || status || ':' || coalesce(log, ''), ' ') "
             "FROM jobd.job WHERE status <> 2");
  EXPECT_EQ(db.scalar("SELECT count(*) || '/' || count(DISTINCT job_id) FROM runs"),
            std::to_string(work_jobs) + "/" + std::to_string(work_jobs));
}

TEST(DatabaseOutageTest, RestartUnderLoad) {
  ClusterGuard guard;
  TestDatabase db;
  db.scalar(kRuns);
  Daemon daemon(db, kConfig);
  ASSERT_TRUE(daemon.waitReady());
  db.scalar("SELECT jobd.enqueue('work') FROM generate_series(1, 600)");
  db.scalar("SELECT jobd.enqueue('noop') FROM generate_series(1, 200)");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) > 50 FROM runs", "true"), "true");
  clusterCtl("restart");
  ASSERT_TRUE(daemon.waitForLog("DATABASE_UP", std::chrono::seconds(30))) << daemon.log();
  db.scalar("SELECT jobd.enqueue('work') FROM generate_series(1, 100)");
  expectEveryJobOnce(db, 700);
  testing::ProcessResult stopped_result = daemon.stop(std::chrono::seconds(20));
  EXPECT_EQ(stopped_result.exit_code, 0) << stopped_result.err;
}

TEST(DatabaseOutageTest, ThirtySecondOutage) {
  ClusterGuard guard;
  TestDatabase db;
  db.scalar(kRuns);
  NotifySocket notify;
  auto env = notify.env();
  env["WATCHDOG_USEC"] = "2000000";
  Daemon daemon(db, kConfig, {}, env);
  ASSERT_TRUE(daemon.waitReady());
  db.scalar("SELECT jobd.enqueue('work') FROM generate_series(1, 200)");
  clusterCtl("stop");
  auto stopped = std::chrono::steady_clock::now();
  std::size_t from = notify.messages().size();
  EXPECT_GE(notify.waitFor("database down", from, std::chrono::seconds(15)), 0);
  std::this_thread::sleep_for(std::chrono::seconds(30) -
                              (std::chrono::steady_clock::now() - stopped));
  int pings = 0;
  for (const auto& m : notify.messages()) {
    pings += m.at > stopped && m.text == "WATCHDOG=1";
  }
  EXPECT_GE(pings, 25) << "the watchdog must keep pinging through an outage";
  EXPECT_TRUE(alive(daemon.process().pid())) << daemon.log();
  clusterCtl("start");
  ASSERT_TRUE(daemon.waitForLog("LISTENER_UP", std::chrono::seconds(30))) << daemon.log();
  // Inserted after the outage: woken by NOTIFY on the new LISTEN session.
  db.scalar("SELECT jobd.enqueue('work') FROM generate_series(1, 50)");
  expectEveryJobOnce(db, 250);
  testing::ProcessResult stopped_result = daemon.stop(std::chrono::seconds(20));
  EXPECT_EQ(stopped_result.exit_code, 0) << stopped_result.err;
}

TEST(DatabaseOutageTest, StartWhileTheDatabaseIsDown) {
  ClusterGuard guard;
  TestDatabase db;
  db.scalar(kRuns);
  db.scalar("SELECT jobd.enqueue('work') FROM generate_series(1, 20)");
  clusterCtl("stop");
  NotifySocket notify;
  Daemon daemon(db, kConfig, {}, notify.env());
  ASSERT_TRUE(daemon.waitForLog("DATABASE_WAIT", std::chrono::seconds(10))) << daemon.log();
  EXPECT_GE(notify.waitFor("EXTEND_TIMEOUT_USEC=", 0, std::chrono::seconds(5)), 0);
  EXPECT_GE(notify.waitFor("STATUS=waiting for the database", 0, std::chrono::seconds(5)), 0);
  EXPECT_EQ(notify.waitFor("READY=1", 0, std::chrono::seconds(3)), -1);
  clusterCtl("start");
  ASSERT_TRUE(daemon.waitReady(std::chrono::seconds(60)));
  expectEveryJobOnce(db, 20);
  testing::ProcessResult stopped_result = daemon.stop(std::chrono::seconds(20));
  EXPECT_EQ(stopped_result.exit_code, 0) << stopped_result.err;
}

// Issue 18, item 17: while a test has the cluster stopped, nothing else can
// take its port (another cluster created meanwhile did, and the restart
// failed). A postmaster binds with SO_REUSEADDR; so does this probe.
TEST(DatabaseOutageTest, AStoppedClustersPortCannotBeTaken) {
  ClusterGuard guard;
  clusterCtl("stop");
  const char* port = std::getenv("PGPORT");
  ASSERT_NE(port, nullptr);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(std::atoi(port)));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  int error = errno;
  ::close(fd);
  EXPECT_EQ(bound, -1);
  EXPECT_EQ(error, EADDRINUSE);
  clusterCtl("start");
  TestDatabase db;  // the cluster answers again on its port
  EXPECT_EQ(db.scalar("SELECT 1"), "1");
}

}  // namespace
}  // namespace jobd
