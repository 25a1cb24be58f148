// Who can see the dashboard (issue 18, items 13 and 14): it has a listener
// of its own, apart from /metrics; it answers only to its own Host names;
// beyond a loopback address it asks for a password; and no client can
// hold every connection and starve /healthz.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "daemon.hpp"
#include "http_client.hpp"

namespace jobd {
namespace {

using testing::baseUrl;
using testing::Daemon;
using testing::dashboardUrl;
using ::testing::HasSubstr;
using testing::httpGet;
using testing::TestDatabase;

// "http://host:port" -> port
int portOf(const std::string& url) {
  return std::stoi(url.substr(url.rfind(':') + 1));
}

// The dashboard is served on dashboard_listen only: /metrics' listener,
// which Prometheus scrapes without a password, shows no job. Before, both
// were one listener and a scraper could read every payload.
TEST(DashboardAccessTest, MetricsAndTheDashboardListenApart) {
  TestDatabase db;
  Daemon daemon(db,
                "[jobd]\nmetrics_listen: 127.0.0.1:0\ndashboard_listen: 127.0.0.1:0\n"
                "[noop]\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string id = db.scalar(R"(SELECT jobd.enqueue('noop', '{"secret": "payload-canary"}'))");
  ASSERT_EQ(testing::waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2"), "2");
  std::string metrics = baseUrl(daemon.process());
  std::string board = dashboardUrl(daemon.process());
  EXPECT_EQ(httpGet(metrics + "/").status, 404);
  EXPECT_EQ(httpGet(metrics + "/job/" + id).status, 404);
  EXPECT_EQ(httpGet(metrics + "/metrics").status, 200);
  EXPECT_EQ(httpGet(metrics + "/healthz").status, 200);
  EXPECT_EQ(httpGet(board + "/").status, 200);
  testing::HttpReply job = httpGet(board + "/job/" + id);
  EXPECT_EQ(job.status, 200);
  EXPECT_THAT(job.body, HasSubstr("payload-canary"));
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// A page whose DNS name was rebound to 127.0.0.1 sends its own Host: the
// dashboard refuses it (421), and answers to the names of dashboard_host.
TEST(DashboardAccessTest, OnlyItsOwnHostNamesAreAnswered) {
  TestDatabase db;
  {
    Daemon daemon(db, "[jobd]\ndashboard_listen: 127.0.0.1:0\n[noop]\n");
    ASSERT_TRUE(daemon.waitReady());
    std::string board = dashboardUrl(daemon.process());
    EXPECT_EQ(httpGet(board + "/", 10000, {"Host: attacker.example"}).status, 421);
    EXPECT_EQ(httpGet(board + "/", 10000, {"Host: localhost:1234"}).status, 200);
    EXPECT_EQ(httpGet(board + "/").status, 200);
    EXPECT_EQ(daemon.stop().exit_code, 0);
  }
  Daemon daemon(db,
                "[jobd]\ndashboard_listen: 127.0.0.1:0\ndashboard_host: jobs.example.com\n"
                "[noop]\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string board = dashboardUrl(daemon.process());
  EXPECT_EQ(httpGet(board + "/", 10000, {"Host: Jobs.Example.com:8443"}).status, 200);
  EXPECT_EQ(httpGet(board + "/").status, 421);
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// Beyond a loopback address the dashboard needs dashboard_password_file
// (check-config says so), and then every page asks for the password:
// HTTP Basic with any user name, or a bearer token.
TEST(DashboardAccessTest, BeyondLoopbackItAsksForAPassword) {
  TestDatabase db;
  const std::string dir = ::testing::TempDir() + "jobd_board_" + db.name();
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/open.conf") << "[jobd]\ndashboard_listen: 0.0.0.0:0\n[noop]\n";
  testing::ProcessResult open =
      testing::runProcess({testing::jobdBinary(), "--config", dir + "/open.conf", "check-config"});
  EXPECT_EQ(open.exit_code, 78);
  EXPECT_THAT(open.err, HasSubstr("[jobd] dashboard_listen: listens beyond a loopback address: "
                                  "set dashboard_password_file too"));

  std::ofstream(dir + "/password") << "s3cret-pw\n";
  Daemon daemon(db, "[jobd]\ndashboard_listen: 0.0.0.0:0\ndashboard_password_file: " + dir +
                        "/password\n[noop]\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string board = "http://127.0.0.1:" + std::to_string(portOf(dashboardUrl(daemon.process())));
  testing::HttpReply refused = httpGet(board + "/");
  EXPECT_EQ(refused.status, 401);
  EXPECT_THAT(refused.headers["www-authenticate"], HasSubstr("Basic"));
  // "ops:s3cret-pw", "ops:wrong"
  EXPECT_EQ(httpGet(board + "/", 10000, {"Authorization: Basic b3BzOndyb25n"}).status, 401);
  EXPECT_EQ(httpGet(board + "/", 10000, {"Authorization: Basic b3BzOnMzY3JldC1wdw=="}).status, 200);
  EXPECT_EQ(httpGet(board + "/healthz", 10000, {"Authorization: Bearer s3cret-pw"}).status, 200);
  EXPECT_EQ(httpGet(board + "/healthz", 10000, {"Authorization: Bearer s3cret-p"}).status, 401);
  // The scheme is case-insensitive (RFC 9110): curl and browsers differ.
  EXPECT_EQ(httpGet(board + "/healthz", 10000, {"Authorization: bearer  s3cret-pw"}).status, 200);
  EXPECT_EQ(
      httpGet(board + "/healthz", 10000, {"Authorization: BASIC b3BzOnMzY3JldC1wdw=="}).status,
      200);
  EXPECT_EQ(daemon.stop().exit_code, 0);
  std::filesystem::remove_all(dir);
}

// Guessing is slow: ten wrong passwords from one address within a minute,
// and that address is refused (429) for the rest of it, the right password
// included; the daemon says so once. A request with no password (a
// browser's first) does not count.
TEST(DashboardAccessTest, WrongPasswordsFromOneAddressAreRefusedForAWhile) {
  TestDatabase db;
  const std::string dir = ::testing::TempDir() + "jobd_guess_" + db.name();
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/password") << "s3cret-pw\n";
  Daemon daemon(db, "[jobd]\ndashboard_listen: 127.0.0.1:0\ndashboard_password_file: " + dir +
                        "/password\n[noop]\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string board = dashboardUrl(daemon.process());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(httpGet(board + "/healthz").status, 401);
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(
        httpGet(board + "/healthz", 10000, {"Authorization: Bearer guess-" + std::to_string(i)})
            .status,
        401);
  }
  testing::HttpReply refused =
      httpGet(board + "/healthz", 10000, {"Authorization: Bearer s3cret-pw"});
  EXPECT_EQ(refused.status, 429);
  EXPECT_FALSE(refused.headers["retry-after"].empty());
  ASSERT_TRUE(daemon.waitForLog("DASHBOARD_LOGINS_REFUSED peer=127.0.0.1"));
  EXPECT_EQ(daemon.stop().exit_code, 0);
  std::filesystem::remove_all(dir);
}

// One client opens more connections than the listener takes and sends
// nothing (or half a request): /healthz still answers at once, because a
// new connection takes the place of the oldest one that has not sent a
// request. Before, 64 idle connections took every place for 30 s.
TEST(DashboardAccessTest, IdleConnectionsCannotStarveHealthz) {
  TestDatabase db;
  Daemon daemon(db, "[jobd]\nmetrics_listen: 127.0.0.1:0\n[noop]\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string metrics = baseUrl(daemon.process());
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(portOf(metrics)));
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    if (i % 2 == 0) {
      const char* half = "GET /metrics HTTP/1.1\r\nHo";
      ASSERT_GT(::send(fd, half, std::strlen(half), 0), 0);
    }
    idle.push_back(fd);
  }
  ::usleep(200 * 1000);
  for (int i = 0; i < 5; ++i) {
    testing::HttpReply health = httpGet(metrics + "/healthz", 2000);
    EXPECT_EQ(health.status, 200) << health.error;
  }
  for (int fd : idle) {
    ::close(fd);
  }
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
