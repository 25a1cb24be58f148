// The dashboard's actions on a job, a job type and a schedule (issue 22): only an operator who
// signed in, with the token of a form the daemon rendered, from the dashboard's own pages, changes
// anything; the transition is the CLI's, and the log names the operator.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "chromium.hpp"
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
  // As a browser shows it, signed in (the password in the URL).
  const std::string signed_in = "http://alice:s3cret-pw@" + board.substr(7);
  testing::Chromium().screenshot(signed_in + "/job/" + mine + "/suspend", "action-suspend.png");

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

// FAILED jobs of `type` failed `ago` ago with `log`, ids in order.
void failed(const TestDatabase& db, const std::string& type, int n, const std::string& ago,
            const std::string& log) {
  db.scalar("SELECT count(jobd.enqueue('" + type + "')) FROM generate_series(1, " +
            std::to_string(n) + ")");
  db.scalar("UPDATE jobd.job SET status = 3, attempt_count = 1, date_started = now() - interval '" +
            ago + "', date_finished = now() - interval '" + ago +
            "' + id * interval '1 ms', log = '" + log + "' WHERE job_type = '" + type +
            "' AND status = 0");
}

// Which of a type's jobs are WAITING again, as ranks in their failure
// order within each log: "ValueError: a 1..1000; KeyError: b none".
std::string retriedOf(const TestDatabase& db, const std::string& type) {
  return db.scalar(
      "SELECT string_agg(log || ' ' || COALESCE(retried, 'none'), '; ' ORDER BY log) FROM ("
      "SELECT log, min(rank) FILTER (WHERE status = 0) || '..' || max(rank) FILTER (WHERE status "
      "= 0) AS retried FROM (SELECT log, status, row_number() OVER (PARTITION BY log ORDER BY id) "
      "AS rank FROM jobd.job WHERE job_type = '" +
      type + "') AS r GROUP BY log) AS g");
}

// Actions on a job type and on a schedule: retry a type's failed jobs of
// one error type (bounded, oldest first), pause and unpause a type, pause
// and resume a schedule. Each is refused without the form's token, and
// otherwise gives what the CLI gives.
TEST(DashboardActionsTest, TypeAndScheduleActionsAreTheCliCommands) {
  TestDatabase db;
  const std::string dir = ::testing::TempDir() + "jobd_type_actions_" + db.name();
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/password") << "s3cret-pw\n";
  Daemon daemon(db, "[jobd]\ndashboard_listen: 127.0.0.1:0\ndashboard_password_file: " + dir +
                        "/password\n[quiet]\nhandler: noop\n");
  ASSERT_TRUE(daemon.waitReady());
  const std::string board = dashboardUrl(daemon.process());
  const std::string origin = "Origin: " + board;
  auto jobd = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"--database", db.conninfo(), "--config", "/dev/null"};
    argv.insert(argv.end(), args.begin(), args.end());
    testing::ProcessResult r = testing::runJobd(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  // The same failures for the dashboard (report) and the CLI (twin): more
  // ValueErrors than the default limit of 1,000, a few KeyErrors, and
  // ValueErrors older than the default 24 hours.
  for (const std::string type : {"report", "twin"}) {
    failed(db, type, 4, "3 days", "ValueError: old");
    failed(db, type, 1200, "1 hour", "ValueError: bad input");
    failed(db, type, 5, "2 hours", "KeyError: gone");
  }

  // The type's page links to the action for each error type.
  std::string type_page = httpGet(board + "/type/report", 10000, {kAlice}).body;
  EXPECT_THAT(type_page,
              HasSubstr("href=\"/action/retry-failed?type=report&amp;error_type=ValueError\""));
  EXPECT_THAT(type_page, HasSubstr("href=\"/action/pause?type=report\""));
  testing::HttpReply confirm =
      httpGet(board + "/action/retry-failed?type=report&error_type=ValueError", 10000, {kAlice});
  ASSERT_EQ(confirm.status, 200) << confirm.body << daemon.log();
  EXPECT_THAT(confirm.body, HasSubstr("<form method=\"post\" action=\"/action/retry-failed\""));
  const std::string token = tokenOf(confirm.body);
  ASSERT_FALSE(token.empty());
  // The confirmations as a browser shows them, signed in (the password in
  // the URL), and the type page's links.
  const std::string signed_in = "http://alice:s3cret-pw@" + board.substr(7);
  testing::Chromium chromium;
  chromium.screenshot(signed_in + "/action/retry-failed?type=report&error_type=ValueError",
                      "action-retry-failed.png");
  chromium.screenshot(signed_in + "/action/pause?type=report", "action-pause-375px.png", "375,800");
  const std::string url = board + "/action/retry-failed";
  const std::string form = "type=report&error_type=ValueError&since=24h&limit=1000";
  const std::string before = retriedOf(db, "report");
  EXPECT_EQ(httpPost(url, form + "&csrf=" + token).status, 403);
  EXPECT_EQ(httpPost(url, form, {kAlice}).status, 403);
  EXPECT_EQ(httpPost(url, form + "&csrf=" + token, {kAlice, "Sec-Fetch-Site: cross-site"}).status,
            403);
  EXPECT_EQ(httpPost(url, "type=report&limit=0&csrf=" + token, {kAlice}).status, 400);
  EXPECT_EQ(httpPost(url, "type=report&limit=10001&csrf=" + token, {kAlice}).status, 400);
  EXPECT_EQ(httpPost(url, "type=report&since=soon&csrf=" + token, {kAlice}).status, 400);
  EXPECT_EQ(httpPost(url, "type=report&since=now&csrf=" + token, {kAlice}).status, 400);
  // A request from another site is refused before its fields are read.
  EXPECT_EQ(
      httpPost(url, "type=report&limit=0&csrf=" + token, {kAlice, "Sec-Fetch-Site: cross-site"})
          .status,
      403);
  EXPECT_EQ(retriedOf(db, "report"), before);
  EXPECT_EQ(before, "KeyError: gone none; ValueError: bad input none; ValueError: old none");

  testing::HttpReply done = httpPost(url, form + "&csrf=" + token, {kAlice, origin});
  EXPECT_EQ(done.status, 303) << done.body;
  EXPECT_EQ(done.headers["location"], "/type/report?retried=1000");
  EXPECT_THAT(jobd({"retry-failed", "twin", "--error-type", "ValueError"}),
              HasSubstr("retried 1000 FAILED jobs of twin"));
  // The 1,000 oldest of the last 24 hours: none of the older ones, no
  // KeyError; the same as the CLI's.
  EXPECT_EQ(retriedOf(db, "report"),
            "KeyError: gone none; ValueError: bad input 1..1000; ValueError: old none");
  EXPECT_EQ(retriedOf(db, "twin"), retriedOf(db, "report"));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND (date_finished < now() "
                      "- interval '10 s' OR lease_expires IS NOT NULL OR scheduled_start IS NOT "
                      "NULL)"),
            "0")
      << db.scalar("SELECT row_to_json(j) FROM jobd.job AS j WHERE status = 0 LIMIT 1");
  EXPECT_THAT(httpGet(board + "/type/report?retried=1000", 10000, {kAlice}).body,
              HasSubstr("1,000 failed jobs went back to WAITING"));
  ASSERT_TRUE(daemon.waitForLog("action=retry-failed"));
  EXPECT_TRUE(
      std::regex_search(daemon.log(), std::regex("DASHBOARD_ACTION operator=alice peer=\\S+ "
                                                 "action=retry-failed type=report target=- "
                                                 "error_type=ValueError schedule=- result=1000")))
      << daemon.log();
  // Every error type, from three days and a minute ago: the rest.
  EXPECT_EQ(httpPost(url, "type=report&since=73h&limit=10000&csrf=" + token, {kAlice}).status, 303);
  jobd({"retry-failed", "twin", "--since", "73h", "--limit", "100000"});
  EXPECT_EQ(retriedOf(db, "report"),
            "KeyError: gone 1..5; ValueError: bad input 1..1200; ValueError: old 1..4");
  EXPECT_EQ(retriedOf(db, "twin"), retriedOf(db, "report"));

  // Pause and unpause a type (a target's pause too): the CLI's rows.
  const std::string pauses =
      "SELECT COALESCE(string_agg(COALESCE(target, '*') || ' ' || reason || ' ' || "
      "COALESCE(round(extract(epoch FROM until - paused_at) / 60) || ' min', 'no end'), '; ' "
      "ORDER BY target NULLS FIRST), 'none') FROM jobd.paused WHERE job_type = ";
  EXPECT_EQ(httpGet(board + "/action/pause?type=report", 10000, {kAlice}).status, 200);
  EXPECT_EQ(
      httpPost(board + "/action/pause", "type=report&for=30m&reason=db+move", {kAlice}).status,
      403);
  EXPECT_EQ(db.scalar(pauses + "'report'"), "none");
  EXPECT_EQ(httpPost(board + "/action/pause", "type=report&for=30m&reason=db+move&csrf=" + token,
                     {kAlice, origin})
                .status,
            303);
  EXPECT_EQ(
      httpPost(board + "/action/pause", "type=report&target=acme&csrf=" + token, {kAlice}).status,
      303);
  jobd({"pause", "twin", "--until", "30m", "--reason", "db move"});
  jobd({"pause", "twin", "--target", "acme"});
  EXPECT_EQ(db.scalar(pauses + "'report'"), "* db move 30 min; acme  no end");
  EXPECT_EQ(db.scalar(pauses + "'report'"), db.scalar(pauses + "'twin'"));
  EXPECT_EQ(db.scalar("SELECT paused_by FROM jobd.paused WHERE job_type = 'report' LIMIT 1"),
            "alice (dashboard)");
  std::string front = httpGet(board + "/", 10000, {kAlice}).body;
  EXPECT_THAT(front, HasSubstr("href=\"/action/unpause?type=report&amp;target=acme\""));
  EXPECT_EQ(
      httpPost(board + "/action/unpause", "type=report&target=acme&csrf=" + token, {kAlice}).status,
      303);
  jobd({"unpause", "twin", "--target", "acme"});
  EXPECT_EQ(db.scalar(pauses + "'report'"), "* db move 30 min");
  EXPECT_EQ(db.scalar(pauses + "'report'"), db.scalar(pauses + "'twin'"));
  // Unpausing what is not paused changes nothing: 404, as the CLI's exit.
  EXPECT_EQ(
      httpPost(board + "/action/unpause", "type=report&target=acme&csrf=" + token, {kAlice}).status,
      404);
  EXPECT_EQ(
      httpPost(board + "/action/pause", "type=report&for=soon&csrf=" + token, {kAlice}).status,
      400);

  // Pause and resume a schedule.
  jobd({"schedule", "add", "nightly", "report", "every 1h"});
  jobd({"schedule", "add", "twin-nightly", "twin", "every 1h"});
  const std::string schedule_paused = "SELECT paused FROM jobd.schedule WHERE name = ";
  EXPECT_THAT(httpGet(board + "/", 10000, {kAlice}).body,
              HasSubstr("href=\"/action/pause-schedule?name=nightly\""));
  EXPECT_EQ(httpPost(board + "/action/pause-schedule", "name=nightly", {kAlice}).status, 403);
  EXPECT_EQ(db.scalar(schedule_paused + "'nightly'"), "f");
  EXPECT_EQ(
      httpPost(board + "/action/pause-schedule", "name=nightly&csrf=" + token, {kAlice}).status,
      303);
  jobd({"schedule", "pause", "twin-nightly"});
  EXPECT_EQ(db.scalar(schedule_paused + "'nightly'"), "t");
  EXPECT_EQ(db.scalar(schedule_paused + "'twin-nightly'"), "t");
  EXPECT_THAT(httpGet(board + "/", 10000, {kAlice}).body,
              HasSubstr("href=\"/action/resume-schedule?name=nightly\""));
  chromium.screenshot(signed_in + "/action/resume-schedule?name=nightly",
                      "action-resume-schedule.png");
  EXPECT_EQ(
      httpPost(board + "/action/resume-schedule", "name=nightly&csrf=" + token, {kAlice}).status,
      303);
  EXPECT_EQ(db.scalar(schedule_paused + "'nightly'"), "f");
  EXPECT_EQ(httpPost(board + "/action/resume-schedule", "name=nope&csrf=" + token, {kAlice}).status,
            404);
  ASSERT_TRUE(
      daemon.waitForLog("action=resume-schedule type=- target=- error_type=- "
                        "schedule=nightly result=resumed"));
  // Each action names its operator, and only its own fields.
  for (const char* line :
       {"operator=alice peer=127.0.0.1 action=pause type=report target=- error_type=- "
        "schedule=- result=paused",
        "operator=alice peer=127.0.0.1 action=pause type=report target=acme error_type=- "
        "schedule=- result=paused",
        "operator=alice peer=127.0.0.1 action=unpause type=report target=acme error_type=- "
        "schedule=- result=unpaused",
        "operator=alice peer=127.0.0.1 action=pause-schedule type=- target=- error_type=- "
        "schedule=nightly result=paused"}) {
    EXPECT_THAT(daemon.log(), HasSubstr(std::string("DASHBOARD_ACTION ") + line));
  }
  EXPECT_THAT(daemon.log(),
              HasSubstr("DASHBOARD_ACTION_FAILED operator=alice peer=127.0.0.1 action=unpause "
                        "type=report target=acme error_type=- schedule=- status=404"));
  EXPECT_EQ(daemon.stop().exit_code, 0);

  // Without a password: no action, and no links to one.
  Daemon open(db, "[jobd]\ndashboard_listen: 127.0.0.1:0\n[quiet]\nhandler: noop\n");
  ASSERT_TRUE(open.waitReady());
  const std::string open_board = dashboardUrl(open.process());
  EXPECT_EQ(httpGet(open_board + "/action/pause?type=report").status, 403);
  EXPECT_EQ(httpPost(open_board + "/action/pause", "type=report&csrf=" + token).status, 403);
  EXPECT_THAT(httpGet(open_board + "/type/report").body, Not(HasSubstr("/action/")));
  EXPECT_THAT(httpGet(open_board + "/").body, Not(HasSubstr("/action/")));
  EXPECT_EQ(db.scalar(pauses + "'report'"), "* db move 30 min");
  EXPECT_EQ(open.stop().exit_code, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace jobd
