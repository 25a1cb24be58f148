#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "daemon.hpp"
#include "http_client.hpp"
#include "notify_socket.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::httpGet;
using testing::HttpReply;
using ::testing::Not;
using testing::TestDatabase;

std::string baseUrl(Daemon& daemon) {
  return testing::baseUrl(daemon.process());
}

// Sample lines of a text exposition: "name{labels}" -> value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    std::size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

// `promtool check metrics` on one scrape: exit status and what it said.
testing::ProcessResult promtool(const std::string& text) {
  return testing::runProcess({"promtool", "check", "metrics"}, {text, {}});
}

// Under load, every scrape of /metrics passes promtool; afterwards the
// counters agree with what the database holds. "Concurrent": it also runs
// under ThreadSanitizer, scrapes on the io thread racing the outcome thread.
TEST(HttpTest, ConcurrentScrapesUnderLoadPassPromtoolAndAgreeWithTheDatabase) {
  TestDatabase db;
  Daemon daemon(db, R"(
[jobd]
workers: 6
poll_interval: 1s
metrics_listen: 127.0.0.1:0
[noop]
concurrency: 4
[fail]
concurrency: 2
max_retries: 0
[sleep]
concurrency: 2
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string url = baseUrl(daemon) + "/metrics";
  db.scalar(
      "INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, 3000);"
      "INSERT INTO jobd.job (job_type, json_data) SELECT 'fail', '{\"error\": \"oops\"}' "
      "FROM generate_series(1, 40);"
      "INSERT INTO jobd.job (job_type, json_data) SELECT 'fail', '{\"error\": \"user\"}' "
      "FROM generate_series(1, 30);"
      "INSERT INTO jobd.job (job_type, json_data) SELECT 'sleep', '{\"ms\": 100}' "
      "FROM generate_series(1, 20)");
  int scrapes = 0;
  bool saw_running = false;
  for (;;) {
    HttpReply reply = httpGet(url);
    ASSERT_EQ(reply.status, 200) << reply.error;
    EXPECT_THAT(reply.headers["content-type"], HasSubstr("text/plain; version=0.0.4"));
    testing::ProcessResult checked = promtool(reply.body);
    ASSERT_EQ(checked.exit_code, 0) << checked.out << checked.err << "\n" << reply.body;
    ++scrapes;
    auto s = samples(reply.body);
    saw_running = saw_running || s["jobd_jobs_running{job_type=\"noop\"}"] > 0 ||
                  s["jobd_jobs_running{job_type=\"sleep\"}"] > 0;
    if (db.scalar("SELECT count(*) FROM jobd.job WHERE status IN (0, 1)") == "0") {
      break;
    }
  }
  EXPECT_GE(scrapes, 2);
  EXPECT_TRUE(saw_running) << "no scrape saw a running job";

  // Outcomes are counted once written; the last batch may trail the rows
  // by a moment, so wait for the totals.
  std::map<std::string, double> s;
  for (int i = 0; i < 200; ++i) {
    s = samples(httpGet(url).body);
    if (s["jobd_jobs_finished_total{job_type=\"noop\",outcome=\"completed\"}"] == 3000 &&
        s["jobd_jobs_finished_total{job_type=\"sleep\",outcome=\"completed\"}"] == 20 &&
        s["jobd_jobs_finished_total{job_type=\"fail\",outcome=\"failed\"}"] +
                s["jobd_jobs_finished_total{job_type=\"fail\",outcome=\"user_error\"}"] ==
            70) {
      break;
    }
    usleep(50 * 1000);
  }
  auto count = [&](const std::string& sql) { return std::stod(db.scalar(sql)); };
  for (const char* type : {"noop", "fail", "sleep"}) {
    std::string t = std::string("job_type=\"") + type + "\"";
    std::string where = std::string(" WHERE job_type = '") + type + "'";
    EXPECT_EQ(s["jobd_jobs_claimed_total{" + t + "}"],
              count("SELECT sum(attempt_count) FROM jobd.job" + where))
        << type;
    EXPECT_EQ(s["jobd_job_queue_latency_seconds_count{" + t + "}"],
              s["jobd_jobs_claimed_total{" + t + "}"])
        << type;
    EXPECT_EQ(s["jobd_jobs_finished_total{" + t + ",outcome=\"completed\"}"],
              count("SELECT count(*) FROM jobd.job" + where + " AND status = 2"))
        << type;
    EXPECT_EQ(s["jobd_job_duration_seconds_bucket{" + t + ",le=\"+Inf\"}"],
              s["jobd_job_duration_seconds_count{" + t + "}"]);
  }
  for (const char* outcome : {"failed", "user_error"}) {
    EXPECT_EQ(
        s[std::string("jobd_jobs_finished_total{job_type=\"fail\",outcome=\"") + outcome + "\"}"],
        count(std::string("SELECT count(*) FROM jobd.job_attempt WHERE outcome = '") + outcome +
              "'"))
        << outcome;
  }
  EXPECT_EQ(s["jobd_jobs_finished_total{job_type=\"fail\",outcome=\"failed\"}"], 40);
  // 100 ms sleeps land in the 0.1 or 0.25 s bucket, not below.
  EXPECT_EQ(s["jobd_job_duration_seconds_bucket{job_type=\"sleep\",le=\"0.05\"}"], 0);
  EXPECT_EQ(s["jobd_job_duration_seconds_bucket{job_type=\"sleep\",le=\"0.25\"}"], 20);
  EXPECT_EQ(s["jobd_database_up"], 1);
  EXPECT_EQ(s["jobd_listener_up"], 1);
  EXPECT_EQ(s["jobd_up"], 1);
  testing::ProcessResult r = daemon.stop();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// /healthz answers 200 while the daemon serves and 503 while it drains;
// /metrics says the same with jobd_up.
TEST(HttpTest, HealthzIs200WhileServingAnd503WhileDraining) {
  TestDatabase db;
  Daemon daemon(db, R"(
[jobd]
metrics_listen: 127.0.0.1:0
drain_timeout: 30s
[sleep]
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string base = baseUrl(daemon);
  HttpReply up = httpGet(base + "/healthz");
  EXPECT_EQ(up.status, 200);
  EXPECT_EQ(up.body, "ok\n");
  db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 4000}')");
  ASSERT_EQ(testing::waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 1", "1"), "1");
  daemon.process().signal(SIGTERM);
  ASSERT_TRUE(daemon.waitForLog("DAEMON_DRAINING"));
  HttpReply draining = httpGet(base + "/healthz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(draining.body, "draining\n");
  EXPECT_THAT(httpGet(base + "/metrics").body, HasSubstr("\njobd_up 0\n"));
  testing::ProcessResult r = daemon.process().wait(std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job"), "2");  // the drain let it finish
  EXPECT_EQ(httpGet(base + "/healthz", 2000).status, 0);     // the listener is gone
}

// A port that is taken stops the start with a clear error, before any job runs.
TEST(HttpTest, APortAlreadyTakenIsFatalAtStart) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string port = std::to_string(ntohs(addr.sin_port));
  TestDatabase db;
  db.scalar("SELECT jobd.enqueue('noop', '{}')");
  Daemon daemon(db, "[jobd]\nmetrics_listen: 127.0.0.1:" + port + "\n[noop]\n");
  testing::ProcessResult r = daemon.process().wait(std::chrono::seconds(30));
  close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("DAEMON_FATAL metrics_listen 127.0.0.1:" + port + ": "));
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job"), "0");
}

// log_format = json: every line is one JSON object with time, level and
// event; a password in the connection settings appears in no log line, no
// STATUS=, no page and no metric.
TEST(HttpTest, JsonLogsAndPagesNeverCarryThePassword) {
  const std::string canary = "Canary-Pw-7f3a9c";
  TestDatabase db;
  testing::NotifySocket notify;
  // A role of this test's own whose password is the canary; the
  // configuration holds the connection settings (no --database).
  std::string role = "canary_" + db.name();
  db.scalar("CREATE ROLE " + role + " LOGIN SUPERUSER PASSWORD '" + canary + "'");
  std::string config = ::testing::TempDir() + "jobd_canary_" + db.name() + ".conf";
  std::ofstream(config) << "[jobd]\ndatabase: " << db.conninfo() << " user=" << role
                        << " password=" << canary
                        << "\nlog_format: json\nmetrics_listen: 127.0.0.1:0\ndashboard_listen: "
                           "127.0.0.1:0\npoll_interval: 1s\n"
                           "[fail]\nmax_retries: 0\n";
  testing::Process daemon({testing::jobdBinary(), "--config", config, "serve"}, {"", notify.env()});
  ASSERT_TRUE(daemon.waitForOutput("DAEMON_READY")) << daemon.errSoFar();
  std::string base = baseUrl(daemon);
  std::string id = db.scalar("SELECT jobd.enqueue('fail', '{\"error\": \"oops\"}')");
  ASSERT_TRUE(daemon.waitForOutput("\"event\":\"JOB_FINISHED\",\"id\":\"" + id + "\""))
      << daemon.errSoFar();
  ASSERT_GE(notify.waitFor("STATUS=running", 0, std::chrono::seconds(15)), 0);
  std::string oops_id = db.scalar("SELECT id FROM jobd.oops");
  std::string board = testing::dashboardUrl(daemon);
  std::string pages = httpGet(board + "/").body + httpGet(base + "/metrics").body +
                      httpGet(board + "/job/" + id).body + httpGet(board + "/oops/" + oops_id).body;
  EXPECT_THAT(pages, HasSubstr(oops_id));
  daemon.signal(SIGTERM);
  testing::ProcessResult r = daemon.wait(std::chrono::seconds(60));
  db.scalar("DROP ROLE " + role);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  EXPECT_THAT(r.err, Not(HasSubstr(canary)));
  EXPECT_THAT(pages, Not(HasSubstr(canary)));
  for (const auto& m : notify.messages()) {
    EXPECT_THAT(m.text, Not(HasSubstr(canary)));
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops WHERE to_jsonb(oops)::text LIKE '%" + canary +
                      "%'"),
            "0");
  std::istringstream lines(r.err);
  std::string line;
  int events = 0;
  while (std::getline(lines, line)) {
    nlohmann::json record = nlohmann::json::parse(line);  // throws (fails) if not JSON
    EXPECT_TRUE(record.contains("time") && record.contains("level")) << line;
    events += record.contains("event") ? 1 : 0;
  }
  EXPECT_GE(events, 4);  // DAEMON_STARTING, HTTP_LISTENING, DAEMON_READY, JOB_FINISHED ...
  EXPECT_THAT(r.err, HasSubstr("\"event\":\"DAEMON_STARTING\""));
  // The conninfo is one field's value (an argument's words never become
  // fields of their own), its password masked.
  EXPECT_THAT(r.err, HasSubstr("password=********"));
  EXPECT_THAT(r.err, Not(HasSubstr("\"password\":")));
}

// A live daemon is listed by `jobd status` while it runs, idle or not, and
// no longer after a clean stop.
TEST(HttpTest, StatusListsLiveDaemonsUntilTheyStop) {
  TestDatabase db;
  Daemon daemon(db, "[noop]\n[fail]\n");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_EQ(testing::waitForValue(db, "SELECT count(*) FROM jobd.daemon", "1"), "1");
  testing::ProcessResult shown =
      testing::runJobd({"--database", db.conninfo(), "--config", "/dev/null", "status", "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  nlohmann::json status = nlohmann::json::parse(shown.out);
  ASSERT_EQ(status["daemons"].size(), 1u) << shown.out;
  EXPECT_EQ(status["daemons"][0]["pid"], daemon.process().pid());
  EXPECT_EQ(status["daemons"][0]["sections"], nlohmann::json({"fail", "noop"}));
  testing::ProcessResult r = daemon.stop();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.daemon"), "0");
}

}  // namespace
}  // namespace jobd
