#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "config/config.hpp"
#include "config/config_problem.hpp"
#include "config/value_parsers.hpp"
#include "registry.hpp"

namespace jobd::config {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const Config> parse(const std::string& text) {
  return Config::fromText(text, "test.conf", jobtypes::handlerCatalog());
}

// The problems a text has, each as ConfigProblem::describe() prints it.
std::vector<std::string> problems(const std::string& text) {
  try {
    parse(text);
  } catch (const ConfigInvalid& e) {
    std::vector<std::string> out;
    for (const ConfigProblem& p : e.problems()) {
      out.push_back(p.describe());
    }
    return out;
  }
  return {};
}

// No file at all gives every documented default.
TEST(ConfigTest, DefaultsMatchTheSpec) {
  auto config = parse("");
  const DaemonSettings& d = config->daemon();
  EXPECT_EQ(d.workers, 8);
  EXPECT_EQ(d.poll_interval, std::chrono::seconds(5));
  EXPECT_EQ(d.rescue_interval, std::chrono::seconds(15));
  EXPECT_EQ(d.drain_timeout, std::chrono::seconds(60));
  EXPECT_EQ(d.oops_prefix, "JOBD");
  EXPECT_EQ(d.lock_dir, "/run/lock");
  EXPECT_EQ(d.log_level, "info");
  EXPECT_EQ(d.max_payload, 1024u * 1024u);
  EXPECT_EQ(config->mail().smtp_url, "smtp://localhost:25");
  EXPECT_EQ(config->mail().product_name, "jobd");

  auto with_section = parse("[noop]\n");
  const SectionConfig* section = with_section->section("noop");
  ASSERT_NE(section, nullptr);
  EXPECT_EQ(section->handler, "noop");
  EXPECT_EQ(section->job_type, "noop");
  EXPECT_EQ(section->concurrency, 1);
  EXPECT_EQ(section->lease_duration, std::chrono::seconds(30));
  EXPECT_EQ(section->timeout, std::chrono::minutes(5));
  EXPECT_EQ(section->kill_grace, std::chrono::seconds(5));
  EXPECT_FALSE(section->max_retries.has_value());
  EXPECT_EQ(section->retry_delay, std::chrono::minutes(10));
  EXPECT_EQ(section->retry_backoff, RetryBackoff::kFixed);
  EXPECT_EQ(section->retry_delay_max, std::chrono::hours(1));
  EXPECT_EQ(section->runner, RunnerKind::kThread);
  EXPECT_FALSE(section->memory_limit.has_value());
  EXPECT_EQ(section->keep_finished, std::chrono::hours(24 * 30));
  EXPECT_TRUE(section->enabled);
}

// Both separators, both comment characters, and ';' or '#' inside a value kept.
TEST(ConfigTest, LazrSyntax) {
  auto config = parse(
      "# a comment\n"
      "; another\n"
      "[jobd]\n"
      "workers = 3\n"
      "oops_prefix: LP\n"
      "\n"
      "[echo]\n"
      "handler: exec\n"
      "command = /bin/sh -c 'echo a; echo b # not a comment'\n"
      "   concurrency   :   2   \n");
  EXPECT_EQ(config->daemon().workers, 3);
  EXPECT_EQ(config->daemon().oops_prefix, "LP");
  const SectionConfig* echo = config->section("echo");
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->concurrency, 2);
  EXPECT_EQ(echo->handler_options.at("command"), "/bin/sh -c 'echo a; echo b # not a comment'");
}

// A bad value names the file, line, section and key, and what was wrong.
TEST(ConfigTest, BadValueNamesSectionAndKey) {
  EXPECT_THAT(problems("[noop]\nconcurrency: many\n"),
              ::testing::ElementsAre(
                  "test.conf:2: [noop] concurrency: expected a whole number from 1 to 10000, got "
                  "'many'"));
  EXPECT_THAT(problems("[jobd]\npoll_interval: 5 minutes\n"),
              ::testing::ElementsAre(HasSubstr("test.conf:2: [jobd] poll_interval: expected a "
                                               "duration")));
  EXPECT_THAT(
      problems("[noop]\nrunner: fork\n"),
      ::testing::ElementsAre(HasSubstr("[noop] runner: expected thread, process or python")));
  EXPECT_THAT(problems("[jobd]\nmetrics_listen: 9100\n"),
              ::testing::ElementsAre(HasSubstr("[jobd] metrics_listen: expected host:port")));
  EXPECT_THAT(problems("[jobd]\ndatabase: host=x port\n"),
              ::testing::ElementsAre(HasSubstr("[jobd] database: invalid connection string")));
}

// A section's schedule (issue 19): its spec, zone, payload and policies
// are checked; schedule_* keys need `schedule`; a spec that never ticks
// again is refused; a linked section does not inherit the schedule.
// Limits by key (issue 21): the key's forms, N/DURATION rates, the burst's
// default, and keys that alone limit nothing.
TEST(ConfigTest, LimitKeys) {
  auto config = parse(
      "[noop]\nlimit_key: data:host\nlimit_concurrency: 3\nlimit_rate: 100/s\n"
      "[other]\nhandler: noop\nlimit_rate: 10/2m\nlimit_burst: 4\n"
      "[plain]\nhandler: noop\n");
  const SectionConfig* noop = config->section("noop");
  EXPECT_TRUE(noop->limited());
  EXPECT_EQ(noop->limit_key, "data:host");
  EXPECT_EQ(noop->limit_concurrency, 3);
  EXPECT_EQ(noop->limit_rate, 100);
  EXPECT_EQ(noop->limit_rate_period, std::chrono::seconds(1));
  EXPECT_EQ(noop->limit_burst, 100);  // N of limit_rate
  const SectionConfig* other = config->section("other");
  EXPECT_EQ(other->limit_key, "type");
  EXPECT_EQ(other->limit_concurrency, 0);
  EXPECT_EQ(other->limit_rate_period, std::chrono::minutes(2));
  EXPECT_EQ(other->limit_burst, 4);
  EXPECT_FALSE(config->section("plain")->limited());
  EXPECT_EQ(parse("[noop]\nlimit_key: target_prefix::\nlimit_concurrency: 1\n")
                ->section("noop")
                ->limit_key,
            "target_prefix::");
  EXPECT_THAT(
      problems("[noop]\nlimit_key: host\nlimit_concurrency: 1\n"),
      ::testing::ElementsAre(HasSubstr(
          "[noop] limit_key: expected type, target, target_prefix:SEPARATOR or data:FIELD")));
  EXPECT_THAT(problems("[noop]\nlimit_key: data:\nlimit_concurrency: 1\n"),
              ::testing::ElementsAre(HasSubstr("[noop] limit_key: expected")));
  for (const char* rate : {"100", "0/s", "100/", "100/0s", "x/s", "5/fortnight"}) {
    EXPECT_THAT(problems(std::string("[noop]\nlimit_rate: ") + rate + "\n"),
                ::testing::ElementsAre(HasSubstr("[noop] limit_rate: expected N/DURATION")))
        << rate;
  }
  EXPECT_THAT(problems("[noop]\nlimit_concurrency: 0\n"),
              ::testing::ElementsAre(HasSubstr("[noop] limit_concurrency: ")));
  EXPECT_THAT(problems("[noop]\nlimit_key: target\n"),
              ::testing::ElementsAre(HasSubstr("[noop] limit_key: has no effect without "
                                               "limit_concurrency, limit_rate or fair")));
  EXPECT_THAT(
      problems("[noop]\nlimit_concurrency: 2\nlimit_burst: 5\n"),
      ::testing::ElementsAre(HasSubstr("[noop] limit_burst: has no effect without limit_rate")));
}

// Fairness and ageing (issue 21): fair takes turns among limit_key's keys
// (so it needs a key other than the type), and either key alone makes the
// section's claim jobd.claim_limited without limiting it.
TEST(ConfigTest, FairnessAndAgeingKeys) {
  auto config = parse(
      "[noop]\nlimit_key: data:person\nfair: true\n"
      "[old]\nhandler: noop\npriority_ageing: 10m\n"
      "[plain]\nhandler: noop\n");
  const SectionConfig* noop = config->section("noop");
  EXPECT_TRUE(noop->fair);
  EXPECT_FALSE(noop->limited());
  EXPECT_TRUE(noop->claimsByKey());
  const SectionConfig* old = config->section("old");
  EXPECT_EQ(old->priority_ageing, std::chrono::minutes(10));
  EXPECT_FALSE(old->fair);
  EXPECT_TRUE(old->claimsByKey());
  EXPECT_FALSE(config->section("plain")->claimsByKey());
  EXPECT_THAT(problems("[noop]\nfair: true\n"),
              ::testing::ElementsAre(HasSubstr("[noop] fair: needs a limit_key other than type")));
  EXPECT_THAT(problems("[noop]\nlimit_key: type\nfair: yes\n"),
              ::testing::ElementsAre(HasSubstr("[noop] fair: needs a limit_key other than type")));
  EXPECT_THAT(problems("[noop]\nlimit_key: target\nfair: maybe\n"),
              ::testing::Contains(HasSubstr("[noop] fair: ")));
  EXPECT_THAT(problems("[noop]\npriority_ageing: 0s\n"),
              ::testing::ElementsAre(HasSubstr("[noop] priority_ageing: ")));
}

TEST(ConfigTest, ClaimAheadKey) {
  auto config = parse("[noop]\nclaim_ahead: 500\n[plain]\nhandler: noop\n");
  EXPECT_EQ(config->section("noop")->claim_ahead, 500);
  EXPECT_EQ(config->section("plain")->claim_ahead, 0);
  EXPECT_THAT(problems("[noop]\nclaim_ahead: -1\n"),
              ::testing::ElementsAre(HasSubstr("[noop] claim_ahead: ")));
  EXPECT_THAT(problems("[noop]\nclaim_ahead: 100001\n"),
              ::testing::ElementsAre(HasSubstr("[noop] claim_ahead: ")));
  // A claim by key counts RUNNING jobs: claiming ahead would hold turns.
  EXPECT_THAT(problems("[noop]\nclaim_ahead: 10\nlimit_concurrency: 2\n"),
              ::testing::ElementsAre(HasSubstr("[noop] claim_ahead: cannot be used with limit_*")));
  EXPECT_THAT(problems("[noop]\nclaim_ahead: 10\npriority_ageing: 1h\n"),
              ::testing::ElementsAre(HasSubstr("[noop] claim_ahead: cannot be used")));
  EXPECT_THAT(problems("[noop]\nclaim_ahead: 10\nlimit_rate: 5/1s\n"),
              ::testing::ElementsAre(HasSubstr("[noop] claim_ahead: cannot be used")));
  EXPECT_THAT(problems("[noop]\nclaim_ahead: 10\nlimit_key: target\nfair: true\n"),
              ::testing::ElementsAre(HasSubstr("[noop] claim_ahead: cannot be used")));
  EXPECT_TRUE(problems("[noop]\nclaim_ahead: 0\nlimit_concurrency: 2\n").empty());
}

TEST(ConfigTest, ScheduleKeys) {
  auto config = parse(
      "[noop]\nschedule: */5 * * * *\nschedule_time_zone: Europe/London\n"
      "schedule_payload: {\"k\": 1}\nschedule_catch_up: all\nschedule_catch_up_limit: 7\n"
      "schedule_overlap: queue\n[linked]\nhandler: noop\nlink: noop\n");
  const SectionConfig* noop = config->section("noop");
  EXPECT_EQ(noop->schedule, "*/5 * * * *");
  EXPECT_EQ(noop->schedule_time_zone, "Europe/London");
  EXPECT_EQ(noop->schedule_payload, "{\"k\": 1}");
  EXPECT_EQ(noop->schedule_catch_up, "all");
  EXPECT_EQ(noop->schedule_catch_up_limit, 7);
  EXPECT_EQ(noop->schedule_overlap, "queue");
  EXPECT_EQ(config->section("linked")->schedule, "");
  EXPECT_EQ(
      parse("[noop]\nschedule: @daily\nschedule_time_zone:\n")->section("noop")->schedule_time_zone,
      "UTC");
  EXPECT_THAT(problems("[noop]\nschedule: 61 * * * *\n"),
              ::testing::ElementsAre(HasSubstr("[noop] schedule: ")));
  EXPECT_THAT(problems("[noop]\nschedule: 0 0 30 2 *\n"),
              ::testing::ElementsAre(HasSubstr("[noop] schedule: '0 0 30 2 *' never ticks again")));
  EXPECT_THAT(problems("[noop]\nschedule: @daily\nschedule_time_zone: Mars/Base\n"),
              ::testing::ElementsAre(HasSubstr("unknown time zone 'Mars/Base'")));
  EXPECT_THAT(problems("[noop]\nschedule: @daily\nschedule_payload: [1]\n"),
              ::testing::ElementsAre(HasSubstr("[noop] schedule_payload: expected a JSON object")));
  EXPECT_THAT(problems("[noop]\nschedule: @daily\nschedule_overlap: sometimes\n"),
              ::testing::ElementsAre(HasSubstr("[noop] schedule_overlap: ")));
  EXPECT_THAT(problems("[noop]\nschedule_catch_up: all\n"),
              ::testing::ElementsAre(
                  HasSubstr("[noop] schedule_catch_up: has no effect without a schedule key")));
}

// Durations that become PostgreSQL millisecond settings are refused past
// what PostgreSQL takes (2^31 - 1 ms): a `timeout: 30d` made every job's
// connection fail, releasing its job for ever (issue 18, item 16).
TEST(ConfigTest, DurationsPostgreSqlCannotTakeAreRefused) {
  EXPECT_THAT(problems("[noop]\ntimeout: 30d\n"),
              ::testing::ElementsAre(HasSubstr("[noop] timeout: must be at most 20d")));
  EXPECT_THAT(problems("[jobd]\ndatabase_timeout: 25d\n"),
              ::testing::ElementsAre(HasSubstr("[jobd] database_timeout: must be at most 20d")));
  EXPECT_THAT(problems("[noop]\nkill_grace: 2h\n"),
              ::testing::ElementsAre(HasSubstr("[noop] kill_grace: must be at most 1h")));
  EXPECT_TRUE(problems("[noop]\ntimeout: 20d\nkill_grace: 1h\n").empty());
}

// Typos are errors: unknown keys in every kind of section, unknown handlers.
TEST(ConfigTest, UnknownKeysAndHandlers) {
  EXPECT_THAT(problems("[jobd]\nworkerz: 3\n"),
              ::testing::ElementsAre("test.conf:2: [jobd] workerz: unknown key"));
  EXPECT_THAT(problems("[mail]\nsmtp: x\n"),
              ::testing::ElementsAre("test.conf:2: [mail] smtp: unknown key"));
  EXPECT_THAT(problems("[noop]\nconcurency: 2\n"),
              ::testing::ElementsAre(HasSubstr("test.conf:2: [noop] concurency: unknown key")));
  EXPECT_THAT(problems("[reports]\nconcurrency: 2\n"),
              ::testing::ElementsAre(
                  HasSubstr("test.conf:1: [reports] handler: unknown handler 'reports' (known: ")));
  EXPECT_THAT(
      problems("[x]\nhandler: nope\n"),
      ::testing::ElementsAre(HasSubstr("test.conf:2: [x] handler: unknown handler 'nope'")));
}

// A handler's own keys are checked: required, validated, and only its own.
TEST(ConfigTest, HandlerKeys) {
  EXPECT_THAT(problems("[run]\nhandler: exec\n"),
              ::testing::ElementsAre("test.conf:1: [run] command: missing, handler exec needs it"));
  EXPECT_THAT(problems("[run]\nhandler: exec\ncommand: /bin/echo 'unterminated\n"),
              ::testing::ElementsAre(HasSubstr("[run] command: cannot split into words")));
  EXPECT_THAT(problems("[noop]\ncommand: /bin/true\n"),
              ::testing::ElementsAre(HasSubstr("[noop] command: unknown key")));
  EXPECT_THAT(problems("[q]\nhandler: sql\n"),
              ::testing::ElementsAre(HasSubstr("[q] statement: missing")));
}

// runner = python runs the python handler, which runs nowhere else; its
// module is required and must be a dotted name (issue 20).
TEST(ConfigTest, PythonRunnerAndHandler) {
  auto config = parse(
      "[karma]\nrunner: python\nmodule: app.jobs\ncallable: KarmaJob\nmax_jobs_per_worker: "
      "100\nmax_worker_rss: 64M\n");
  const SectionConfig* karma = config->section("karma");
  ASSERT_NE(karma, nullptr);
  EXPECT_EQ(karma->runner, RunnerKind::kPython);
  EXPECT_EQ(karma->handler, "python");
  EXPECT_EQ(karma->handler_options.at("module"), "app.jobs");
  EXPECT_EQ(karma->max_jobs_per_worker, 100);
  EXPECT_EQ(karma->max_worker_rss, 64ULL << 20);
  EXPECT_THAT(problems("[k]\nrunner: python\n"),
              ::testing::ElementsAre("test.conf:1: [k] module: missing, handler python needs it"));
  EXPECT_THAT(problems("[k]\nrunner: python\nmodule: app..jobs\n"),
              ::testing::ElementsAre(HasSubstr("[k] module: expected a dotted Python name")));
  EXPECT_THAT(
      problems("[k]\nhandler: python\nmodule: app\n"),
      ::testing::ElementsAre("test.conf:2: [k] runner: handler python needs runner = python"));
  EXPECT_THAT(problems("[k]\nrunner: python\nhandler: noop\n"),
              ::testing::ElementsAre(
                  "test.conf:3: [k] runner: runner = python needs handler python, not 'noop'"));
  EXPECT_THAT(problems("[k]\nrunner: python\nmodule: m\npython: python3\n"),
              ::testing::ElementsAre(HasSubstr("[k] python: expected an absolute path")));
  EXPECT_THAT(
      problems("[noop]\nmax_jobs_per_worker: 5\nmax_worker_rss: 1G\n"),
      ::testing::ElementsAre(
          "test.conf:2: [noop] max_jobs_per_worker: applies only to runner = process or "
          "python",
          "test.conf:3: [noop] max_worker_rss: applies only to runner = process or python"));
  EXPECT_THAT(problems("[k]\nrunner: python\nmodule: m\nmax_jobs_per_worker: -1\n"),
              ::testing::ElementsAre(HasSubstr("[k] max_jobs_per_worker:")));
}

// An sql `statement` is one statement: a `;` followed by more is refused,
// since PREPARE ran the tail once per connection, outside the job's
// transaction (issue 18, item 16). Quotes, dollar quotes and comments are
// not split on, and a final `;` is fine.
TEST(ConfigTest, SqlStatementIsOneStatement) {
  EXPECT_THAT(problems("[q]\nhandler: sql\nstatement: SELECT f($1); DELETE FROM t\n"),
              ::testing::ElementsAre(HasSubstr("[q] statement: must be one SQL statement")));
  EXPECT_THAT(problems("[q]\nhandler: sql\nstatement: SELECT 1;;SELECT 2\n"),
              ::testing::ElementsAre(HasSubstr("must be one SQL statement")));
  for (const char* one :
       {"SELECT f($1, $2);", "SELECT 'a;b', \"c;d\" FROM t; -- done; really",
        "SELECT $$x; y$$, $tag$ ; $tag$ /* ; */", "SELECT E'it\\'s;' ;", "SELECT 'it''s; fine'"}) {
    EXPECT_TRUE(problems(std::string("[q]\nhandler: sql\nstatement: ") + one + "\n").empty())
        << one;
  }
}

// Malformed lines, duplicate sections and keys are reported, all of them.
TEST(ConfigTest, MalformedLinesAreAllReported) {
  auto found = problems(
      "workers: 3\n"
      "[jobd\n"
      "[noop]\n"
      "just words\n"
      "concurrency: 1\n"
      "concurrency: 2\n"
      "[noop]\n");
  EXPECT_THAT(found, ::testing::ElementsAre(
                         "test.conf:1: workers: key outside of any section",
                         "test.conf:2: malformed section header '[jobd'",
                         "test.conf:4: [noop] expected 'key: value' or 'key = value', got 'just "
                         "words'",
                         "test.conf:6: [noop] concurrency: duplicate key (first set at line 5)",
                         "test.conf:7: [noop] duplicate section (first defined at line 3)"));
}

// link: takes the keys written in the linked section and not here, except
// job_type; chains are followed; the section's own keys win.
TEST(ConfigTest, LinkInheritsAllButJobType) {
  auto config = parse(
      "[base]\n"
      "handler: exec\n"
      "command: /bin/cat\n"
      "job_type: base_jobs\n"
      "concurrency: 3\n"
      "timeout: 1m\n"
      "[middle]\n"
      "link: base\n"
      "timeout: 2m\n"
      "[leaf]\n"
      "link: middle\n"
      "concurrency: 5\n");
  const SectionConfig* leaf = config->section("leaf");
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(leaf->handler, "exec");
  EXPECT_EQ(leaf->handler_options.at("command"), "/bin/cat");
  EXPECT_EQ(leaf->job_type, "leaf");
  EXPECT_EQ(leaf->concurrency, 5);
  EXPECT_EQ(leaf->timeout, std::chrono::minutes(2));
  EXPECT_EQ(leaf->link, "middle");
  EXPECT_EQ(config->section("middle")->job_type, "middle");
  EXPECT_EQ(config->section("middle")->concurrency, 3);
}

// A link cycle, and a link to nothing, are errors naming the key.
TEST(ConfigTest, LinkCyclesAndDanglingLinks) {
  auto found = problems("[a]\nhandler: noop\nlink: b\n[b]\nlink: c\n[c]\nlink: a\n");
  EXPECT_THAT(found, ::testing::Each(HasSubstr("link: link cycle: ")));
  EXPECT_THAT(found, ::testing::Contains("test.conf:7: [c] link: link cycle: a -> b -> c -> a"));
  EXPECT_THAT(
      problems("[noop]\nlink: nowhere\n"),
      ::testing::ElementsAre("test.conf:2: [noop] link: 'nowhere' is not a job source section"));
  EXPECT_THAT(problems("[noop]\nlink: jobd\n[jobd]\n"),
              ::testing::ElementsAre(HasSubstr("[noop] link: 'jobd' is not a job source")));
}

// Two enabled sections may not claim one job type.
TEST(ConfigTest, JobTypeClaimedTwice) {
  EXPECT_THAT(problems("[noop]\n[other]\nhandler: noop\njob_type: noop\n"),
              ::testing::ElementsAre(
                  "test.conf:4: [other] job_type: job type 'noop' is already claimed by section "
                  "[noop]"));
  EXPECT_TRUE(problems("[noop]\n[other]\nhandler: noop\njob_type: noop\nenabled: false\n").empty());
}

// A missing file is a configuration error that names the file.
TEST(ConfigTest, MissingFile) {
  try {
    Config::fromFile("/nonexistent/jobd.conf", jobtypes::handlerCatalog());
    FAIL() << "no exception";
  } catch (const ConfigInvalid& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/jobd.conf: cannot read the configuration file");
  }
}

// etc/jobd.conf is valid, and shows every key with its default.
TEST(ConfigTest, ShippedConfigDocumentsEveryKey) {
  std::string path = std::string(JOBD_SOURCE_DIR) + "/etc/jobd.conf";
  auto config = Config::fromFile(path, jobtypes::handlerCatalog());
  EXPECT_NE(config->section("noop"), nullptr);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string content = text.str();
  auto documented = [&](const KeyInfo& key) {
    std::string value =
        std::regex_replace(key.default_value, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)");
    std::regex line("(^|\n)#? ?" + key.name + ":" + (value.empty() ? "" : " " + value) + "(\n|$)");
    return std::regex_search(content, line);
  };
  for (const auto* keys : {&Config::daemonKeys(), &Config::mailKeys(), &Config::sectionKeys()}) {
    for (const KeyInfo& key : *keys) {
      EXPECT_TRUE(documented(key))
          << "etc/jobd.conf lacks '# " << key.name << ":" << (key.default_value.empty() ? "" : " ")
          << key.default_value << "'";
    }
  }
  for (const HandlerDescriptor& handler : jobtypes::handlerCatalog()) {
    for (const HandlerKey& key : handler.keys) {
      EXPECT_NE(content.find(key.name + ":"), std::string::npos)
          << "etc/jobd.conf lacks handler key " << key.name;
    }
  }
}

// Every key that a reload logs as RELOAD_PENDING is the one that changed,
// and etc/jobd.conf says "Restart only." in its comment.
TEST(ConfigTest, RestartOnlyKeysAreTheChangedOnesAndDocumented) {
  auto was = parse("[jobd]\nmetrics_listen: 127.0.0.1:9100\n");
  auto now = parse(
      "[jobd]\nmetrics_listen: 127.0.0.1:9101\ndatabase_timeout: 30s\nworkers: 3\n"
      "dashboard_host: a.example\n");
  EXPECT_EQ(restartOnlyChanges(was->daemon(), now->daemon()),
            (std::vector<std::string>{"database_timeout", "metrics_listen", "dashboard_host"}));
  EXPECT_TRUE(restartOnlyChanges(was->daemon(), was->daemon()).empty());

  DaemonSettings all_different;
  all_different.database = "x";
  all_different.listen_database = "x";
  all_different.database_timeout = Duration(1);
  all_different.metrics_listen = "x";
  all_different.dashboard_listen = "x";
  all_different.dashboard_password_file = "x";
  all_different.dashboard_hosts = {"x"};
  std::ifstream in(std::string(JOBD_SOURCE_DIR) + "/etc/jobd.conf");
  std::stringstream text;
  text << in.rdbuf();
  std::string content = text.str();
  for (const std::string& key : restartOnlyChanges(was->daemon(), all_different)) {
    std::size_t at = content.find("\n# " + key + ":");
    ASSERT_NE(at, std::string::npos) << key;
    // The comment lines just above the key.
    std::size_t start = content.rfind("\n\n", at);
    std::size_t previous_key = content.rfind(":\n", at);
    start = std::max(start == std::string::npos ? 0 : start,
                     previous_key == std::string::npos ? 0 : previous_key);
    EXPECT_NE(content.substr(start, at - start).find("Restart only."), std::string::npos) << key;
  }
  EXPECT_EQ(restartOnlyChanges(was->daemon(), all_different).size(), 7U);
}

// A loopback listen address is read as a number: a name that starts with
// "127." is no loopback address (review of issue 18, item 14).
TEST(ConfigTest, LoopbackListenAddressesAreNumbers) {
  for (const char* loopback : {"127.0.0.1:8080", "127.1.2.3:0", "[::1]:8080", "localhost:80"}) {
    EXPECT_TRUE(isLoopbackListen(loopback)) << loopback;
  }
  for (const char* beyond : {"127.example.net:80", "127.0.0.1.nip.io:80", "0.0.0.0:80", "[::]:80",
                             "10.0.0.1:80", "[::ffff:10.0.0.1]:80", "example.com:80"}) {
    EXPECT_FALSE(isLoopbackListen(beyond)) << beyond;
  }
}

}  // namespace
}  // namespace jobd::config
