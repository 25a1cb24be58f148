// Durable schedules (schema 15, issue 19): `jobd schedule ...`, a
// section's `schedule` key and its reload, the catch-up policies after
// downtime, the overlap policies, and a spec that no daemon can run. The
// fleet's exactly-once across a SIGKILL and a database restart is in
// tests/outage/schedule_outage_test.cpp; the ticks themselves (time zones,
// daylight saving) in tests/unit/schedule_spec_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "daemon.hpp"
#include "process.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::ProcessResult;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;

constexpr int kExitUsage = 64;
constexpr int kExitDataErr = 65;

class ScheduleTest : public ::testing::Test {
 protected:
  ProcessResult jobd(std::vector<std::string> args) {
    args.insert(args.begin(), {"--database", db_.conninfo(), "--config", "/dev/null"});
    return testing::runJobd(args);
  }
  std::string scalar(const std::string& sql) { return db_.scalar(sql); }
  void execute(const std::string& sql) {
    auto conn = db_.connect();
    pqxx::work txn(*conn);
    txn.exec(sql);
    txn.commit();
  }

  TestDatabase db_;
};

TEST_F(ScheduleTest, TheCommandsAddListPauseResumeRunAndRemove) {
  ProcessResult added = jobd({"schedule", "add", "nightly", "noop", "30 2 * * *", "--time-zone",
                              "Europe/London", "--payload", R"({"k": 1})", "--overlap", "skip",
                              "--catch-up", "all", "--catch-up-limit", "5"});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  EXPECT_EQ(added.out, "schedule nightly: noop '30 2 * * *' Europe/London\n");
  EXPECT_EQ(scalar("SELECT concat_ws(' ', job_type, spec, time_zone, json_data::text, catch_up, "
                   "catch_up_limit, overlap, from_config, paused) FROM jobd.schedule"),
            "noop 30 2 * * * Europe/London {\"k\": 1} all 5 skip f f");

  // Refused before anything is written: a name taken, a bad spec, zone,
  // policy or payload.
  ProcessResult taken = jobd({"schedule", "add", "nightly", "noop", "@daily"});
  EXPECT_EQ(taken.exit_code, kExitUsage);
  EXPECT_THAT(taken.err, HasSubstr("schedule 'nightly' exists; --replace redefines it"));
  ProcessResult bad_spec = jobd({"schedule", "add", "x", "noop", "61 * * * *"});
  EXPECT_EQ(bad_spec.exit_code, kExitUsage);
  EXPECT_THAT(bad_spec.err, HasSubstr("schedule add: "));
  ProcessResult bad_zone = jobd({"schedule", "add", "x", "noop", "@daily", "--time-zone", "Mars"});
  EXPECT_EQ(bad_zone.exit_code, kExitUsage);
  EXPECT_THAT(bad_zone.err, HasSubstr("unknown time zone 'Mars'"));
  ProcessResult never = jobd({"schedule", "add", "x", "noop", "0 0 30 2 *"});
  EXPECT_EQ(never.exit_code, kExitUsage);
  EXPECT_THAT(never.err, HasSubstr("'0 0 30 2 *' never ticks again"));
  ProcessResult bad_policy = jobd({"schedule", "add", "x", "noop", "every 1m", "--overlap", "no"});
  EXPECT_EQ(bad_policy.exit_code, kExitUsage);
  ProcessResult bad_payload =
      jobd({"schedule", "add", "x", "noop", "every 1m", "--payload", "[1]"});
  EXPECT_EQ(bad_payload.exit_code, kExitDataErr);
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.schedule"), "1");

  // --replace redefines every field: those not given take their defaults.
  ProcessResult replaced =
      jobd({"schedule", "add", "nightly", "noop", "every 1h", "--replace", "--overlap", "skip"});
  ASSERT_EQ(replaced.exit_code, 0) << replaced.err;
  EXPECT_EQ(scalar("SELECT spec || ' ' || time_zone FROM jobd.schedule"), "every 1h UTC");

  ProcessResult now = jobd({"schedule", "run-now", "nightly"});
  ASSERT_EQ(now.exit_code, 0) << now.err;
  const std::string job = now.out.substr(0, now.out.size() - 1);
  // The requester names the schedule, and the instant of a manual tick.
  EXPECT_EQ(scalar("SELECT concat_ws(' ', job_type, json_data::text, requester ~ "
                   "'^schedule nightly run-now [0-9-]{10}T[0-9:]{8}Z$') FROM jobd.job WHERE id = " +
                   job),
            "noop {} t");
  // overlap = skip: its job is still WAITING (no daemon runs), so a second
  // run-now makes none.
  ProcessResult skipped = jobd({"schedule", "run-now", "nightly"});
  ASSERT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_THAT(skipped.out, HasSubstr("no job made"));
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.job"), "1");

  ProcessResult paused = jobd({"schedule", "pause", "nightly"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  ProcessResult list = jobd({"schedule", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("nightly: noop 'every 1h' UTC, catch_up last, overlap skip, "
                                  "PAUSED\n  next - (paused), last "));
  EXPECT_THAT(list.out, HasSubstr("(job " + job + " WAITING), missed 0, skipped 1\n"));
  ProcessResult json = jobd({"schedule", "list", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  auto listed = nlohmann::json::parse(json.out);
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed[0]["last_job"].get<std::int64_t>(), std::stoll(job));
  EXPECT_EQ(listed[0]["last_status"], "WAITING");
  EXPECT_EQ(listed[0]["paused"], true);

  ASSERT_EQ(jobd({"schedule", "resume", "nightly"}).exit_code, 0);
  EXPECT_EQ(scalar("SELECT paused FROM jobd.schedule"), "f");
  ProcessResult removed = jobd({"schedule", "remove", "nightly"});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.schedule"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.schedule_tick"), "0");
  ProcessResult gone = jobd({"schedule", "pause", "nightly"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_THAT(gone.err, HasSubstr("no schedule named 'nightly'"));
  EXPECT_EQ(jobd({"schedule", "run-now", "nightly"}).exit_code, 1);
  EXPECT_EQ(jobd({"schedule", "frobnicate"}).exit_code, kExitUsage);
}

// A section's `schedule` key makes a schedule named after the section; a
// reload redefines it, and removes it when the key is gone or the section
// is. A linked section does not inherit it. A schedule added by the CLI
// starts firing at once (its NOTIFY wakes the daemon, whose idle wait is a
// minute).
TEST_F(ScheduleTest, ASectionsKeyIsWrittenAndReloadedAndTheCliWakesTheDaemon) {
  Daemon daemon(db_,
                "[noop]\nschedule: every 1s\nschedule_payload: {\"from\": \"config\"}\n"
                "[linked]\nhandler: noop\nlink: noop\n"
                "[nightly]\nhandler: noop\nschedule: @daily\n");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_EQ(
      waitForValue(db_,
                   "SELECT count(*) >= 3 FROM jobd.job WHERE requester LIKE 'schedule noop tick %' "
                   "AND json_data = '{\"from\": \"config\"}'",
                   "true", 20s),
      "true");
  EXPECT_EQ(scalar("SELECT string_agg(name || ':' || from_config, ' ' ORDER BY name) FROM "
                   "jobd.schedule"),
            "nightly:true noop:true");
  // Made by the configuration: the CLI cannot remove it (the next reload
  // would make it again).
  ProcessResult remove = jobd({"schedule", "remove", "noop"});
  EXPECT_EQ(remove.exit_code, kExitUsage);
  EXPECT_THAT(remove.err, HasSubstr("remove its schedule key there"));
  // Made by the configuration: the CLI cannot redefine it.
  ProcessResult replace = jobd({"schedule", "add", "noop", "noop", "@daily", "--replace"});
  EXPECT_EQ(replace.exit_code, kExitUsage);
  EXPECT_THAT(replace.err, HasSubstr("comes from a configuration file's section"));

  // The nightly section is gone: so is its schedule.
  std::ofstream(daemon.configPath()) << "[noop]\nschedule: 0 0 1 1 *\n";
  ::kill(daemon.process().pid(), SIGHUP);
  ASSERT_EQ(waitForValue(db_, "SELECT string_agg(name || ' ' || spec, ',') FROM jobd.schedule",
                         "noop 0 0 1 1 *", 10s),
            "noop 0 0 1 1 *");
  std::ofstream(daemon.configPath()) << "[noop]\n";
  ::kill(daemon.process().pid(), SIGHUP);
  ASSERT_EQ(waitForValue(db_, "SELECT count(*) FROM jobd.schedule", "0", 10s), "0");

  ASSERT_EQ(jobd({"schedule", "add", "cli", "noop", "every 1s"}).exit_code, 0);
  ASSERT_EQ(
      waitForValue(db_,
                   "SELECT count(*) >= 2 FROM jobd.job WHERE requester LIKE 'schedule cli tick %'",
                   "true", 10s),
      "true");
  ProcessResult stopped = daemon.stop();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
}

// Two daemons race for every tick of a schedule a second (and run again
// under ThreadSanitizer, by its name): one job per tick, whoever made it.
TEST_F(ScheduleTest, TwoDaemonsRaceForEveryTick) {
  Daemon first(db_, "[noop]\nconcurrency: 4\n");
  Daemon second(db_, "[noop]\nconcurrency: 4\n");
  ASSERT_TRUE(first.waitReady(60s));
  ASSERT_TRUE(second.waitReady(60s));
  const std::string start = scalar(
      "WITH s AS (INSERT INTO jobd.schedule (name, job_type, spec, catch_up, catch_up_limit) "
      "VALUES ('race', 'noop', 'every 1s', 'all', 1000) RETURNING created) "
      "SELECT floor(extract(epoch FROM created))::bigint + 1 FROM s");
  const std::string window =
      "fire_time BETWEEN to_timestamp(" + start + ") AND to_timestamp(" + start + " + 4)";
  ASSERT_EQ(waitForValue(db_, "SELECT count(*) FROM jobd.schedule_tick WHERE " + window, "5", 30s),
            "5");
  execute("UPDATE jobd.schedule SET paused = true");
  EXPECT_EQ(scalar("SELECT count(*) || '/' || count(DISTINCT requester) FROM jobd.job WHERE "
                   "requester LIKE 'schedule race tick %' AND substring(requester FROM "
                   "'tick (.*)$')::timestamptz BETWEEN to_timestamp(" +
                   start + ") AND to_timestamp(" + start + " + 4)"),
            "5/5");
  EXPECT_EQ(first.stop().exit_code, 0);
  EXPECT_EQ(second.stop().exit_code, 0);
}

// Ten minutes of downtime, as the schedules see it: every tick through
// fired_through was made, and that was ten minutes ago. Each catch-up
// policy then makes what it says, once.
TEST_F(ScheduleTest, AfterDowntimeEachCatchUpPolicyMakesWhatItSays) {
  // A tick five minutes ago and none since (UTC, seconds first).
  const std::string five_ago = scalar(
      "SELECT to_char(now() AT TIME ZONE 'UTC' - interval '5 minutes', 'SS MI HH24') || "
      "' * * *'");
  for (const auto& [name, spec, policy] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"all_every_second", "every 1s", "all"},
           {"all_five", "every 1s", "all"},
           {"last_every_second", "every 1s", "last"},
           {"skip_late", five_ago, "skip"},
           {"last_late", five_ago, "last"}}) {
    std::vector<std::string> args = {"schedule", "add", name, "noop", spec, "--catch-up", policy};
    if (name == "all_five") {
      args.insert(args.end(), {"--catch-up-limit", "5"});
    } else if (policy == "all") {
      args.insert(args.end(), {"--catch-up-limit", "1000"});
    }
    ProcessResult added = jobd(args);
    ASSERT_EQ(added.exit_code, 0) << added.err;
  }
  const std::int64_t rewound =
      std::stoll(scalar("UPDATE jobd.schedule SET fired_through = now() - interval '10 minutes' "
                        "RETURNING floor(extract(epoch FROM fired_through))::bigint"));
  // Only the catch-up is counted: the schedules pause once it is made.
  Daemon daemon(db_, "[noop]\n");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_TRUE(daemon.waitForLog("SCHEDULE_TICKS_MISSED schedule=skip_late", 20s)) << daemon.log();
  ASSERT_EQ(
      waitForValue(db_, "SELECT bool_and(next_fire IS NOT NULL) FROM jobd.schedule", "true", 20s),
      "true");
  execute("UPDATE jobd.schedule SET paused = true");
  // What the first pass made: every due schedule was locked by it, and its
  // ticks carry its start time.
  auto jobs = [&](const std::string& name) {
    return scalar(
        "SELECT count(*) FROM jobd.schedule_tick WHERE job_id IS NOT NULL AND schedule = '" + name +
        "' AND made_at = (SELECT min(made_at) FROM jobd.schedule_tick)");
  };
  auto missed = [&](const std::string& name) {
    return std::stoi(scalar("SELECT missed FROM jobd.schedule WHERE name = '" + name + "'"));
  };
  // Every second from the rewound fired_through to the pass: 600 and the
  // daemon's start-up.
  const std::int64_t due =
      std::stoll(scalar("SELECT floor(extract(epoch FROM min(made_at)))::bigint FROM "
                        "jobd.schedule_tick")) -
      rewound;
  ASSERT_GE(due, 600);
  // Made whatever the policy: the last minute's ticks, on time (60).
  // all: every older one up to its limit.
  EXPECT_EQ(jobs("all_every_second"), std::to_string(due));
  EXPECT_EQ(missed("all_every_second"), 0);
  EXPECT_EQ(jobs("all_five"), "65");
  EXPECT_EQ(missed("all_five"), due - 65);
  // last: nothing older, since ticks were on time.
  EXPECT_EQ(jobs("last_every_second"), "60");
  EXPECT_EQ(missed("last_every_second"), due - 60);
  // A tick five minutes late: skip makes none, last makes it.
  EXPECT_EQ(jobs("skip_late"), "0");
  EXPECT_EQ(missed("skip_late"), 1);
  EXPECT_EQ(jobs("last_late"), "1");
  EXPECT_EQ(missed("last_late"), 0);
  // One tick row per job: nothing doubled.
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.schedule_tick WHERE job_id IS NOT NULL"),
            scalar("SELECT count(*) FROM jobd.job"));
}

// overlap = skip makes no job while the last one runs; overlap = queue
// makes them all, to run one at a time (target schedule:<name>).
TEST_F(ScheduleTest, OverlapSkipAndQueue) {
  ASSERT_EQ(jobd({"schedule", "add", "skipper", "sleep", "every 1s", "--overlap", "skip",
                  "--payload", R"({"ms": 2500})"})
                .exit_code,
            0);
  ASSERT_EQ(jobd({"schedule", "add", "queuer", "sleep", "every 1s", "--overlap", "queue",
                  "--payload", R"({"ms": 2500})"})
                .exit_code,
            0);
  Daemon daemon(db_, "[sleep]\nconcurrency: 4\n");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_EQ(waitForValue(
                db_,
                "SELECT count(*) >= 2 FROM jobd.job WHERE requester LIKE 'schedule skipper tick %' "
                "AND status = 2",
                "true", 30s),
            "true");
  execute("UPDATE jobd.schedule SET paused = true");
  // Ticks every second, jobs of 2.5 s: most ticks skipped, and no job
  // made while the one before had not finished (the tick's transaction may
  // have started just before that job's outcome committed).
  EXPECT_GE(std::stoi(scalar("SELECT skipped FROM jobd.schedule WHERE name = 'skipper'")), 2);
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.job a JOIN jobd.job b ON a.id < b.id "
                   "AND a.requester LIKE 'schedule skipper tick %' AND b.requester LIKE 'schedule "
                   "skipper tick %' "
                   "AND b.date_created < a.date_finished - interval '300 ms'"),
            "0");
  // queue: a job for every tick, all on one target, which runs them one at
  // a time.
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.schedule_tick WHERE schedule = 'queuer' "
                   "AND job_id IS NULL"),
            "0");
  EXPECT_EQ(scalar("SELECT count(DISTINCT target) || ' ' || min(target) FROM jobd.job "
                   "WHERE requester LIKE 'schedule queuer tick %'"),
            "1 schedule:queuer");
  EXPECT_GE(std::stoi(scalar(
                "SELECT count(*) FROM jobd.job WHERE requester LIKE 'schedule queuer tick %' "
                "AND status = 0")),
            2);
}

// A spec written by SQL that does not parse: the daemon sets it aside with
// the reason (shown by `schedule list`), and the other schedules fire.
TEST_F(ScheduleTest, ASpecNoDaemonCanRunIsSetAsideAndTheOthersFire) {
  execute(
      "INSERT INTO jobd.schedule (name, job_type, spec) VALUES "
      "('broken', 'noop', 'every fortnight'), ('fine', 'noop', 'every 1s')");
  Daemon daemon(db_, "[noop]\n");
  ASSERT_TRUE(daemon.waitReady());
  ASSERT_TRUE(daemon.waitForLog("SCHEDULE_INVALID schedule=broken", 20s)) << daemon.log();
  ASSERT_EQ(
      waitForValue(db_,
                   "SELECT count(*) >= 2 FROM jobd.job WHERE requester LIKE 'schedule fine tick %'",
                   "true", 20s),
      "true");
  ProcessResult list = jobd({"schedule", "list"});
  EXPECT_THAT(list.out, HasSubstr("PROBLEM (no daemon runs it until it is changed): every: "));
  // Fixed by SQL: the trigger clears the problem and wakes the daemons.
  execute("UPDATE jobd.schedule SET spec = 'every 1s' WHERE name = 'broken'");
  ASSERT_EQ(
      waitForValue(
          db_, "SELECT count(*) >= 1 FROM jobd.job WHERE requester LIKE 'schedule broken tick %'",
          "true", 20s),
      "true");
}

}  // namespace
}  // namespace jobd
