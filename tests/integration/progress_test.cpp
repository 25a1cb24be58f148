// Progress and checkpoints (schema 18, issue 19): a running job's reports
// are written to jobd.job_progress at most once a second, fenced on its
// attempt; its last checkpoint comes back to its next attempt after a
// SIGKILL of its daemon (a rescue on another daemon), a drain's release or
// a retry; C++ handlers, exec programs (JOBD_PROGRESS_FD, JOBD_CHECKPOINT)
// and sql statements (jobd.report_progress, $3) all report; `jobd show`,
// /metrics and the dashboard show it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "daemon.hpp"
#include "http_client.hpp"
#include "process.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;

class ProgressTest : public ::testing::Test {
 protected:
  testing::ProcessResult jobd(std::vector<std::string> rest) {
    rest.insert(rest.begin(), {"--database", db_.conninfo(), "--config", "/dev/null"});
    return testing::runJobd(rest);
  }
  std::string scalar(const std::string& sql) { return db_.scalar(sql); }
  long long number(const std::string& sql) { return std::stoll(scalar(sql)); }

  TestDatabase db_;
};

constexpr const char* kSleepers = R"(
[jobd]
poll_interval: 1s
rescue_interval: 1s
metrics_listen: 127.0.0.1:0
[sleep]
lease_duration: 2s
drills: true
)";

// Issue 19: a job killed at 70% by SIGKILL of its daemon resumes from its
// checkpoint on another daemon. The sleep handler saves how long it has
// slept; its next attempt sleeps only the rest, and says where it began.
TEST_F(ProgressTest, AJobKilledAt70PercentResumesFromItsCheckpointOnAnotherDaemon) {
  const std::string id = scalar(
      R"(SELECT jobd.enqueue('sleep', '{"ms": 10000, "progress": "steps"}', max_retries => 2))");
  auto first = std::make_unique<Daemon>(db_, kSleepers);
  ASSERT_TRUE(first->waitReady());
  ASSERT_EQ(waitForValue(db_, "SELECT percent >= 70 FROM jobd.job_progress WHERE job_id = " + id,
                         "true", 30s),
            "true")
      << first->log();
  // /metrics shows it while it runs.
  std::string metrics = testing::httpGet(testing::baseUrl(first->process()) + "/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("jobd_job_progress_percent{job_type=\"sleep\",job_id=\"" + id));
  first->process().signal(SIGKILL);
  first->process().wait(10s);
  first.reset();
  const long long saved =
      number("SELECT checkpoint->>'slept_ms' FROM jobd.job_progress WHERE job_id = " + id);
  EXPECT_GE(saved, 6000);  // reported at 70% or later, a second apart at most
  EXPECT_EQ(scalar("SELECT checkpoint_attempt FROM jobd.job_progress WHERE job_id = " + id), "1");
  testing::ProcessResult shown = jobd({"show", id});
  EXPECT_THAT(shown.out, HasSubstr("progress:        "));
  EXPECT_THAT(shown.out, HasSubstr("checkpoint:      {\"slept_ms\": " + std::to_string(saved)));

  Daemon second(db_, kSleepers);
  ASSERT_TRUE(second.waitReady());
  ASSERT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "2", 60s), "2")
      << second.log();
  // Rescued (attempt 2 was the lease's expiry), then run from the checkpoint.
  EXPECT_EQ(scalar("SELECT string_agg(outcome, ',' ORDER BY attempt) FROM jobd.job_attempt "
                   "WHERE job_id = " +
                   id),
            "lease_expired");
  EXPECT_EQ(scalar("SELECT attempt_count FROM jobd.job WHERE id = " + id), "2");
  EXPECT_EQ(number("SELECT result->>'resumed_from_ms' FROM jobd.job_result WHERE job_id = " + id),
            saved);
  // The second attempt slept only what was left.
  EXPECT_LT(number("SELECT extract(epoch FROM date_finished - date_started) * 1000 FROM jobd.job "
                   "WHERE id = " +
                   id),
            10000 - saved + 3000);
  EXPECT_EQ(scalar("SELECT percent || ' ' || attempt FROM jobd.job_progress WHERE job_id = " + id),
            "100 2");
}

// A job that reports 10,000 times a second writes its row at most once a
// second (and once more at its end, before its outcome).
TEST_F(ProgressTest, TenThousandReportsASecondWriteAtMostOneRowASecond) {
  scalar(R"sql(
    CREATE TABLE progress_writes (at timestamptz DEFAULT clock_timestamp(), percent float8);
    CREATE FUNCTION log_progress_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO progress_writes (percent) VALUES (NEW.percent);
      RETURN NULL;
    END $$;
    CREATE TRIGGER log_progress_write AFTER INSERT OR UPDATE ON jobd.job_progress
      FOR EACH ROW EXECUTE FUNCTION log_progress_write();
    SELECT 1)sql");
  Daemon daemon(db_, kSleepers);
  ASSERT_TRUE(daemon.waitReady());
  const std::string id =
      scalar(R"(SELECT jobd.enqueue('sleep', '{"ms": 4000, "progress": "spin"}'))");
  ASSERT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "2", 60s), "2")
      << daemon.log();
  const long long reports =
      number("SELECT result->>'reports' FROM jobd.job_result WHERE job_id = " + id);
  const long long writes = number("SELECT count(*) FROM progress_writes");
  std::cout << reports << " reports in 4 s (" << reports / 4 << " a second) made " << writes
            << " writes\n";
  // About 20,000 a second on the ASan build alone; at least 10,000 in all
  // on a loaded machine.
  EXPECT_GE(reports, 10000);
  // At 0 s, 1 s, 2 s, 3 s and the last one at 4 s.
  EXPECT_LE(writes, 6);
  EXPECT_GE(writes, 4);
  // A second apart, but for the last one, which goes with the outcome.
  EXPECT_EQ(scalar("SELECT count(*) FROM (SELECT at - lag(at) OVER (ORDER BY at) AS gap, "
                   "row_number() OVER (ORDER BY at DESC) AS from_end FROM progress_writes) AS w "
                   "WHERE gap < interval '500 ms' AND from_end > 1"),
            "0");
  EXPECT_EQ(scalar("SELECT percent FROM progress_writes ORDER BY at DESC LIMIT 1"), "100");
}

// A draining daemon writes a job's last checkpoint before its release: the
// next attempt starts from where the job was at SIGTERM, not from the last
// once-a-second write before it.
TEST_F(ProgressTest, ADrainedJobResumesFromItsLastCheckpoint) {
  // Released at SIGTERM, without waiting for the job.
  std::string config = kSleepers;
  config.replace(config.find("[sleep]"), 0, "drain_timeout: 0s\n");
  auto first = std::make_unique<Daemon>(db_, config);
  ASSERT_TRUE(first->waitReady());
  const std::string id =
      scalar(R"(SELECT jobd.enqueue('sleep', '{"ms": 8000, "progress": "steps"}'))");
  ASSERT_EQ(waitForValue(db_, "SELECT percent >= 20 FROM jobd.job_progress WHERE job_id = " + id,
                         "true", 30s),
            "true")
      << first->log();
  // Just after a periodic write, 700 ms before the next one.
  const std::string written = scalar("SELECT reported FROM jobd.job_progress WHERE job_id = " + id);
  ASSERT_EQ(
      waitForValue(
          db_, "SELECT reported <> '" + written + "' FROM jobd.job_progress WHERE job_id = " + id,
          "true", 5s),
      "true");
  const long long periodic =
      number("SELECT checkpoint->>'slept_ms' FROM jobd.job_progress WHERE job_id = " + id);
  std::this_thread::sleep_for(600ms);
  testing::ProcessResult drained = first->stop();
  EXPECT_EQ(drained.exit_code, 0);
  EXPECT_EQ(scalar("SELECT status || ' ' || attempt_count FROM jobd.job WHERE id = " + id), "0 0");
  const long long released =
      number("SELECT checkpoint->>'slept_ms' FROM jobd.job_progress WHERE job_id = " + id);
  EXPECT_GE(released - periodic, 500) << "the release's checkpoint is the periodic one";

  Daemon second(db_, kSleepers);
  ASSERT_TRUE(second.waitReady());
  ASSERT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "2", 30s), "2")
      << second.log();
  EXPECT_EQ(number("SELECT result->>'resumed_from_ms' FROM jobd.job_result WHERE job_id = " + id),
            released);
}

// exec programs write reports to JOBD_PROGRESS_FD and find their checkpoint
// in JOBD_CHECKPOINT; sql statements call jobd.report_progress and find it
// in $3, even when the statement's transaction rolled back; a process
// runner's job reports through its runner. A line that is not a report is
// logged and skipped.
TEST_F(ProgressTest, ExecSqlAndProcessRunnerJobsReportAndResume) {
  const std::string script = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                             "/jobd-progress-" + std::to_string(getpid()) + ".sh";
  {
    std::ofstream out(script);
    out << "if [ -n \"$JOBD_CHECKPOINT\" ]; then echo \"$JOBD_CHECKPOINT\"; exit 0; fi\n"
           "echo 'not a report' >&\"$JOBD_PROGRESS_FD\"\n"
           "head -c 140000 /dev/zero | tr '\\0' x >&3; echo >&3\n"
           "o=; c=; i=0; while [ $i -lt 100 ]; do o=\"$o[\"; c=\"$c]\"; i=$((i+1)); done\n"
           "echo \"{\\\"checkpoint\\\": $o$c}\" >&3\n"
           "echo '{\"percent\": 50, \"message\": \"half\", \"checkpoint\": {\"step\": 1}}' "
           ">&\"$JOBD_PROGRESS_FD\"\n"
           "exit 75\n";
  }
  scalar(R"sql(
    CREATE FUNCTION retry_once(checkpoint jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
    BEGIN
      IF checkpoint IS NULL THEN
        RAISE EXCEPTION 'not yet' USING ERRCODE = '40001';
      END IF;
      RETURN checkpoint;
    END $$;
    SELECT 1)sql");
  Daemon daemon(db_,
                "[jobd]\npoll_interval: 1s\n"
                "[prog]\nhandler: exec\nresult: stdout\nretry_delay: 0s\ncommand: /bin/sh " +
                    script +
                    "\n"
                    "[sqlprog]\nhandler: sql\nresult: column\nretry_delay: 0s\n"
                    "statement: SELECT jobd.report_progress($2, 40, 'sql half', "
                    "'{\"row\": 7}') AS reported, retry_once($3) AS result\n"
                    "[forked]\nhandler: sleep\nrunner: process\n");
  ASSERT_TRUE(daemon.waitReady());
  const std::string exec = scalar("SELECT jobd.enqueue('prog', max_retries => 1)");
  const std::string sql = scalar("SELECT jobd.enqueue('sqlprog', max_retries => 1)");
  const std::string forked =
      scalar(R"(SELECT jobd.enqueue('forked', '{"ms": 1500, "progress": "steps"}'))");
  ASSERT_EQ(waitForValue(db_, "SELECT count(*) FROM jobd.job WHERE status <> 2", "0", 60s), "0")
      << daemon.log() << scalar("SELECT string_agg(type || ': ' || value, '; ') FROM jobd.oops");
  std::remove(script.c_str());
  auto result = [&](const std::string& job) {
    return scalar("SELECT result::text FROM jobd.job_result WHERE job_id = " + job);
  };
  // Each ran twice: the second time with the first one's checkpoint.
  EXPECT_EQ(result(exec), "{\"step\": 1}");
  EXPECT_EQ(result(sql), "{\"row\": 7}");
  // (The second attempt's own report may land after its commit, and be
  // fenced out: the job is COMPLETED by then.)
  EXPECT_EQ(scalar("SELECT concat_ws(' ', percent, message, checkpoint) FROM "
                   "jobd.job_progress WHERE job_id = " +
                   sql),
            "40 sql half {\"row\": 7}");
  EXPECT_THAT(daemon.log(), HasSubstr("a line over 131072 bytes (ProgressNotReadable)"));
  EXPECT_THAT(daemon.log(), HasSubstr("nested deeper than 64 levels (ProgressNotReadable)"));
  EXPECT_THAT(daemon.log(), HasSubstr("JOB_PROGRESS_REFUSED id=" + exec))
      << scalar("SELECT string_agg(type || ': ' || value, '; ') FROM jobd.oops");
  EXPECT_EQ(scalar("SELECT concat_ws(' ', percent, result->>'resumed_from_ms') FROM "
                   "jobd.job_progress JOIN jobd.job_result USING (job_id) WHERE job_id = " +
                   forked),
            "100 0");
  // A COMPLETED job retried by an operator starts from nothing.
  ASSERT_EQ(jobd({"retry", exec}).exit_code, 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.job_progress WHERE job_id = " + exec), "0");
}

// A write from an attempt that is over changes nothing.
TEST_F(ProgressTest, SaveProgressIsFencedOnTheAttempt) {
  const std::string id = scalar("SELECT jobd.enqueue('noop')");
  scalar(
      "UPDATE jobd.job SET status = 1, attempt_count = 2, lease_owner = 'me', "
      "date_started = now() - interval '1 min', lease_expires = now() + interval '1 min' "
      "WHERE id = " +
      id + " RETURNING 1");
  EXPECT_EQ(scalar("SELECT jobd.save_progress(" + id + ", 1, 'me', 10, 'old', true, '1')"), "f");
  EXPECT_EQ(scalar("SELECT jobd.save_progress(" + id + ", 2, 'other', 10, 'x', true, '1')"), "f");
  EXPECT_EQ(scalar("SELECT jobd.save_progress(" + id + ", 2, 'me', 10, 'now', true, '2')"), "t");
  // Without a checkpoint, the checkpoint stays; without a message, so does it.
  EXPECT_EQ(scalar("SELECT jobd.save_progress(" + id + ", 2, 'me', 20, NULL, false, NULL)"), "t");
  EXPECT_EQ(scalar("SELECT concat_ws(' ', percent, message, checkpoint) FROM jobd.job_progress "
                   "WHERE job_id = " +
                   id),
            "20 now 2");
  // The next run clears what the last one said, and keeps its checkpoint;
  // a drain's release gives the attempt number back, so a run is told
  // by its claim's time.
  scalar("UPDATE jobd.job SET date_started = now() WHERE id = " + id + " RETURNING 1");
  EXPECT_EQ(scalar("SELECT jobd.save_progress(" + id + ", 2, 'me', NULL, 'again', false, NULL)"),
            "t");
  EXPECT_EQ(scalar("SELECT concat_ws(' ', attempt, percent, message, checkpoint) FROM "
                   "jobd.job_progress WHERE job_id = " +
                   id),
            "2 again 2");
  scalar(
      "UPDATE jobd.job SET attempt_count = 3, date_started = now() + interval '1 s' WHERE id = " +
      id + " RETURNING 1");
  EXPECT_EQ(scalar("SELECT jobd.save_progress(" + id + ", 3, 'me', NULL, NULL, false, NULL)"), "t");
  EXPECT_EQ(scalar("SELECT concat_ws(' ', attempt, percent, message, checkpoint, "
                   "checkpoint_attempt) FROM jobd.job_progress WHERE job_id = " +
                   id),
            "3 2 2");
  // A write whose check saw an older run (here: a progress row of a later
  // run than the job's) never replaces what a later run saved.
  scalar("UPDATE jobd.job_progress SET attempt_started = now() + interval '1 h' RETURNING 1");
  EXPECT_EQ(scalar("SELECT jobd.save_progress(" + id + ", 3, 'me', 50, 'stale', true, '3')"), "f");
  EXPECT_EQ(scalar("SELECT checkpoint FROM jobd.job_progress WHERE job_id = " + id), "2");
  // Deleted with its job.
  scalar("DELETE FROM jobd.job WHERE id = " + id + " RETURNING 1");
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.job_progress"), "0");
}

}  // namespace
}  // namespace jobd
