// The dashboard's actions on a job (issue 22): only an operator who signed
// in, with the token of a form the daemon rendered, from the dashboard's
// own pages, changes anything; the transition is the CLI's, and the log
// names the operator.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "daemon.hpp"
#include "http_client.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using testing::dashboardUrl;
using ::testing::HasSubstr;
using testing::httpGet;
using testing::httpPost;
using ::testing::Not;
using testing::TestDatabase;

const std::string kAlice = "Authorization: Basic YWxpY2U6czNjcmV0LXB3";  // alice:s3cret-pw

std::string rowOf(const TestDatabase& db, const std::string& id) {
  return db.scalar("SELECT status || ' ' || COALESCE(log, '-') FROM jobd.job WHERE id = " + id);
}

std::string attemptsOf(const TestDatabase& db, const std::string& id) {
  return db.scalar(
      "SELECT COALESCE(string_agg(outcome || ' ' || COALESCE(error_type, '-') || ' ' || "
      "COALESCE(error_message, '-'), '; ' ORDER BY attempt), '') FROM jobd.job_attempt "
      "WHERE job_id = " +
      id);
}

// The token in an action's confirmation page.
std::string tokenOf(const std::string& page) {
  std::smatch found;
  EXPECT_TRUE(std::regex_search(page, found, std::regex(R"re(name="csrf" value="([0-9a-f]+)")re")))
      << page;
  return found.size() > 1 ? found[1].str() : "";
}

TEST(DashboardActionsTest, OnlyASignedInOperatorWithTheFormsTokenActsAsTheCliDoes) {
  TestDatabase db;
  const std::string dir = ::testing::TempDir() + "jobd_actions_" + db.name();
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/password") << "s3cret-pw\n";
  // Served: a type no job here has, so the jobs below stay where they are.
  Daemon daemon(db, "[jobd]\ndashboard_listen: 127.0.0.1:0\ndashboard_password_file: " + dir +
                        "/password\n[quiet]\nhandler: noop\n");
  ASSERT_TRUE(daemon.waitReady());
  const std::string board = dashboardUrl(daemon.process());
  const std::string mine = db.scalar("SELECT jobd.enqueue('report')");
  const std::string cli = db.scalar("SELECT jobd.enqueue('report')");

  // The job's page links to the actions its status allows.
  std::string job_page = httpGet(board + "/job/" + mine, 10000, {kAlice}).body;
  EXPECT_THAT(job_page, HasSubstr("href=\"/job/" + mine + "/suspend\""));
  EXPECT_THAT(job_page, HasSubstr("href=\"/job/" + mine + "/cancel\""));
  EXPECT_THAT(job_page, Not(HasSubstr("href=\"/job/" + mine + "/resume\"")));
  testing::HttpReply confirm = httpGet(board + "/job/" + mine + "/suspend", 10000, {kAlice});
  ASSERT_EQ(confirm.status, 200) << confirm.body;
  EXPECT_THAT(confirm.body,
              HasSubstr("<form method=\"post\" action=\"/job/" + mine + "/suspend\""));
  const std::string token = tokenOf(confirm.body);
  ASSERT_FALSE(token.empty());

  // Refused, and nothing changes: no password; no token; a wrong one;
  // another site's page, by Sec-Fetch-Site or by Origin.
  const std::string before = rowOf(db, mine);
  const std::string url = board + "/job/" + mine + "/suspend";
  EXPECT_EQ(httpPost(url, "csrf=" + token).status, 403);
  EXPECT_EQ(httpPost(url, "csrf=" + token, {"Authorization: Basic YWxpY2U6d3Jvbmc="}).status, 403);
  EXPECT_EQ(httpPost(url, "", {kAlice}).status, 403);
  EXPECT_EQ(httpPost(url, "csrf=0123456789abcdef0123456789abcdef", {kAlice}).status, 403);
  EXPECT_EQ(httpPost(url, "csrf=" + token, {kAlice, "Sec-Fetch-Site: cross-site"}).status, 403);
  EXPECT_EQ(httpPost(url, "csrf=" + token, {kAlice, "Origin: http://attacker.example"}).status,
            403);
  EXPECT_EQ(rowOf(db, mine), before);
  EXPECT_THAT(daemon.log(), Not(HasSubstr("DASHBOARD_ACTION ")));

  // Made: the CLI's transition, on a second job, gives the same row.
  const std::string origin = "Origin: " + board;
  testing::HttpReply done =
      httpPost(url, "csrf=" + token, {kAlice, origin, "Sec-Fetch-Site: same-origin"});
  EXPECT_EQ(done.status, 303) << done.body;
  EXPECT_EQ(done.headers["location"], "/job/" + mine);
  auto jobd = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"--database", db.conninfo(), "--config", "/dev/null"};
    argv.insert(argv.end(), args.begin(), args.end());
    testing::ProcessResult r = testing::runJobd(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  jobd({"suspend", cli});
  EXPECT_EQ(rowOf(db, mine), rowOf(db, cli));
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + mine), "4");
  ASSERT_TRUE(daemon.waitForLog("DASHBOARD_ACTION operator=alice"));
  EXPECT_TRUE(std::regex_search(daemon.log(),
                                std::regex("DASHBOARD_ACTION operator=alice peer=\\S+ job=" + mine +
                                           " action=suspend from=\\S+ to=\\S+")))
      << daemon.log();
  // No page of another site may frame the dashboard (a decoy over the
  // confirmation's button).
  EXPECT_EQ(confirm.headers["x-frame-options"], "DENY");
  EXPECT_EQ(confirm.headers["content-security-policy"], "frame-ancestors 'none'");

  // An action the status does not allow changes nothing (409).
  std::string suspended = rowOf(db, mine);
  EXPECT_EQ(httpPost(board + "/job/" + mine + "/retry", "csrf=" + token, {kAlice}).status, 409);
  EXPECT_EQ(rowOf(db, mine), suspended);
  EXPECT_THAT(httpGet(board + "/job/" + mine + "/retry", 10000, {kAlice}).body,
              HasSubstr("id=\"refused\""));
  ASSERT_TRUE(daemon.waitForLog("DASHBOARD_ACTION_FAILED operator=alice"));
  // A reason is one line of text, of 1,000 bytes at most.
  EXPECT_EQ(httpPost(board + "/job/" + mine + "/cancel",
                     "csrf=" + token + "&reason=" + std::string(1001, 'x'), {kAlice})
                .status,
            400);
  EXPECT_EQ(
      httpPost(board + "/job/" + mine + "/cancel", "csrf=" + token + "&reason=a%0Ab", {kAlice})
          .status,
      400);
  EXPECT_EQ(rowOf(db, mine), suspended);

  // Resume, then cancel with a reason: the CLI's rows again.
  EXPECT_EQ(httpPost(board + "/job/" + mine + "/resume", "csrf=" + token, {kAlice}).status, 303);
  jobd({"resume", cli});
  EXPECT_EQ(httpPost(board + "/job/" + mine + "/cancel",
                     "csrf=" + token + "&reason=duplicate+of+%3C42%3E", {kAlice})
                .status,
            303);
  jobd({"cancel", cli, "--reason", "duplicate of <42>"});
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + mine), "3");
  EXPECT_EQ(rowOf(db, mine), rowOf(db, cli));
  EXPECT_EQ(attemptsOf(db, mine), attemptsOf(db, cli));
  EXPECT_THAT(rowOf(db, mine), HasSubstr("duplicate of <42>"));
  EXPECT_EQ(daemon.stop().exit_code, 0);

  // Without a password nobody is signed in: no action, even from loopback.
  Daemon open(db, "[jobd]\ndashboard_listen: 127.0.0.1:0\n[quiet]\nhandler: noop\n");
  ASSERT_TRUE(open.waitReady());
  const std::string open_board = dashboardUrl(open.process());
  const std::string waiting = db.scalar("SELECT jobd.enqueue('report')");
  EXPECT_EQ(httpGet(open_board + "/job/" + waiting + "/cancel").status, 403);
  EXPECT_EQ(httpPost(open_board + "/job/" + waiting + "/cancel", "csrf=" + token).status, 403);
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + waiting), "0");
  EXPECT_THAT(httpGet(open_board + "/job/" + waiting).body, Not(HasSubstr("id=\"actions\"")));
  EXPECT_EQ(open.stop().exit_code, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace jobd
