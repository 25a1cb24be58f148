// Results and `jobd wait` (schema 16, issue 19): a job's JSON result is
// written with its COMPLETED mark (thread and process runners, exec's
// stdout), shown by `jobd show`, bounded by max_payload; `jobd wait`
// returns at the commit that finished the job, woken by its NOTIFY, with
// an exit status for each ending.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
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

constexpr int kExitTempFail = 75;

class ResultTest : public ::testing::Test {
 protected:
  std::vector<std::string> args(std::vector<std::string> rest) {
    rest.insert(rest.begin(),
                {testing::jobdBinary(), "--database", db_.conninfo(), "--config", "/dev/null"});
    return rest;
  }
  ProcessResult jobd(std::vector<std::string> rest) {
    rest.insert(rest.begin(), {"--database", db_.conninfo(), "--config", "/dev/null"});
    return testing::runJobd(rest);
  }
  std::string scalar(const std::string& sql) { return db_.scalar(sql); }

  TestDatabase db_;
};

TEST_F(ResultTest, ThreadProcessAndExecJobsReturnResults) {
  Daemon daemon(db_,
                "[jobd]\nmax_payload: 200\n"
                "[noop]\n"
                "[forked]\nhandler: noop\nrunner: process\n"
                "[stdout]\nhandler: exec\nresult: stdout\n"
                "command: /bin/sh -c 'cat; echo'\n"
                "[badout]\nhandler: exec\nresult: stdout\ncommand: /bin/sh -c 'echo not json'\n"
                "[bigout]\nhandler: exec\nresult: stdout\ncommand: /bin/sh -c 'seq 1 100'\n"
                "[quiet]\nhandler: exec\ncommand: /bin/sh -c 'echo not json'\n"
                "[nul]\nhandler: exec\nresult: stdout\ncommand: printf '\"\\\\u0000\"'\n"
                "[bignum]\nhandler: exec\nresult: stdout\ncommand: echo 12345678901234567890123\n"
                "[sqlres]\nhandler: sql\nresult: column\n"
                "statement: SELECT jsonb_build_object('id', $2, 'in', $1) AS result\n");
  ASSERT_TRUE(daemon.waitReady());
  const std::string thread = scalar(R"(SELECT jobd.enqueue('noop', '{"result": {"n": 1}}'))");
  const std::string plain = scalar("SELECT jobd.enqueue('noop')");
  const std::string forked = scalar(R"(SELECT jobd.enqueue('forked', '{"result": [1, 2]}'))");
  // exec echoes its json_data: that is its result.
  const std::string exec = scalar(R"(SELECT jobd.enqueue('stdout', '{"echo": "x"}'))");
  const std::string bad = scalar("SELECT jobd.enqueue('badout')");
  const std::string quiet = scalar("SELECT jobd.enqueue('quiet')");
  const std::string nul = scalar("SELECT jobd.enqueue('nul')");
  const std::string bignum = scalar("SELECT jobd.enqueue('bignum')");
  // A sql job's `result` column, written in its own transaction.
  const std::string sql = scalar(R"(SELECT jobd.enqueue('sqlres', '{"k": 1}'))");
  const std::string big = scalar("SELECT jobd.enqueue('bigout')");
  ASSERT_EQ(waitForValue(db_, "SELECT count(*) FROM jobd.job WHERE status IN (0, 1)", "0", 30s),
            "0")
      << daemon.log();
  auto result = [&](const std::string& id) {
    return scalar(
        "SELECT coalesce(j.status || ' ' || r.result::text, j.status::text) FROM "
        "jobd.job j LEFT JOIN jobd.job_result r ON r.job_id = j.id WHERE j.id = " +
        id);
  };
  EXPECT_EQ(result(thread), "2 {\"n\": 1}");
  EXPECT_EQ(result(plain), "2");
  EXPECT_EQ(result(forked), "2 [1, 2]");
  EXPECT_EQ(result(exec), "2 {\"echo\": \"x\"}");
  // Not JSON on stdout under result = stdout: an OOPS. Without the key,
  // stdout is nobody's business.
  EXPECT_EQ(result(bad), "3");
  EXPECT_EQ(scalar("SELECT type FROM jobd.oops WHERE job_id = " + bad), "ResultNotJson");
  EXPECT_EQ(result(quiet), "2");
  // jsonb cannot hold \u0000: an OOPS that says so, not an outcome that
  // cannot be written.
  EXPECT_EQ(result(nul), "3");
  EXPECT_EQ(scalar("SELECT type FROM jobd.oops WHERE job_id = " + nul), "ResultNotStorable");
  // A program's digits are kept.
  EXPECT_EQ(result(bignum), "2 12345678901234567890123");
  EXPECT_EQ(result(sql), "2 {\"id\": " + sql + ", \"in\": {\"k\": 1}}");
  // Over max_payload (200 bytes here): an OOPS, and no result.
  EXPECT_EQ(result(big), "3");
  EXPECT_EQ(scalar("SELECT type FROM jobd.oops WHERE job_id = " + big), "ResultTooLarge");

  ProcessResult show = jobd({"show", thread});
  EXPECT_THAT(show.out, HasSubstr("result:          {\"n\": 1}\n"));
  EXPECT_THAT(jobd({"show", bignum}).out, HasSubstr("result:          12345678901234567890123\n"));
  // Deleted with its job.
  scalar("DELETE FROM jobd.job WHERE id = " + thread + " RETURNING 1");
  EXPECT_EQ(scalar("SELECT count(*) FROM jobd.job_result WHERE job_id = " + thread), "0");
}

// `jobd wait` wakes at the commit that finishes the job (the job is
// finished here by SQL, so that the commit's moment is the test's): it
// prints the result and exits 0 within milliseconds (printed: about 1 ms
// under ASan; issue 19 asks for 10 ms).
TEST_F(ResultTest, WaitReturnsAtTheCommitThatFinishesTheJob) {
  const std::string id = scalar("SELECT jobd.enqueue('noop')");
  testing::Process waiter(args({"wait", id}));
  ASSERT_EQ(waitForValue(db_, "SELECT waited FROM jobd.job WHERE id = " + id, "true", 10s), "true");
  std::this_thread::sleep_for(200ms);  // it is in its wait, not on its way there
  auto conn = db_.connect();
  {
    pqxx::work txn(*conn);
    txn.exec("UPDATE jobd.job SET status = 2, date_finished = now() WHERE id = " + id);
    txn.exec("INSERT INTO jobd.job_result (job_id, result) VALUES (" + id + ", '{\"ok\": true}')");
    txn.commit();
  }
  const auto committed = std::chrono::steady_clock::now();
  ASSERT_TRUE(waiter.waitForOutput("{\"ok\": true}", 10s));
  const auto woke = std::chrono::steady_clock::now() - committed;
  std::cout << "jobd wait printed the result "
            << std::chrono::duration_cast<std::chrono::microseconds>(woke).count()
            << " us after the COMPLETED commit\n";
  EXPECT_LT(woke, 100ms);  // about 1 ms, under ASan
  ProcessResult ended = waiter.wait(10s);
  EXPECT_EQ(ended.exit_code, 0) << ended.err;
  EXPECT_EQ(ended.out, "{\"ok\": true}\n");
}

TEST_F(ResultTest, WaitSaysHowEachJobEnded) {
  // Already finished: at once.
  const std::string done = scalar("SELECT jobd.enqueue('noop')");
  scalar("UPDATE jobd.job SET status = 2 WHERE id = " + done + " RETURNING 1");
  ProcessResult completed = jobd({"wait", done});
  EXPECT_EQ(completed.exit_code, 0) << completed.err;
  EXPECT_EQ(completed.out, "");  // no result
  const std::string failed = scalar("SELECT jobd.enqueue('noop')");
  scalar(
      "UPDATE jobd.job SET status = 3, log = E'first\\nScheduling nothing: it broke\\n' "
      "WHERE id = " +
      failed + " RETURNING 1");
  ProcessResult failure = jobd({"wait", failed});
  EXPECT_EQ(failure.exit_code, 1);
  EXPECT_THAT(failure.err, HasSubstr("job " + failed + " FAILED: Scheduling nothing: it broke"));
  ProcessResult missing = jobd({"wait", "999999"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no job with id 999999"));
  // Still WAITING at --timeout.
  const std::string waiting = scalar("SELECT jobd.enqueue('noop')");
  const auto started = std::chrono::steady_clock::now();
  ProcessResult timed_out = jobd({"wait", waiting, "--timeout", "300ms"});
  EXPECT_EQ(timed_out.exit_code, kExitTempFail);
  EXPECT_THAT(timed_out.err, HasSubstr("job " + waiting + " is still WAITING after 300ms"));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);
  EXPECT_EQ(jobd({"wait", waiting, "--timeout", "soon"}).exit_code, 64);
  // Deleted while waited for: woken, and told.
  testing::Process waiter(args({"wait", waiting}));
  ASSERT_EQ(waitForValue(db_, "SELECT waited FROM jobd.job WHERE id = " + waiting, "true", 10s),
            "true");
  scalar("DELETE FROM jobd.job WHERE id = " + waiting + " RETURNING 1");
  ProcessResult deleted = waiter.wait(10s);
  EXPECT_EQ(deleted.exit_code, 1);
  EXPECT_THAT(deleted.err, HasSubstr("(or it was deleted)"));
}

// With a daemon: the job runs, and wait prints what it returned.
TEST_F(ResultTest, WaitForAJobADaemonRuns) {
  Daemon daemon(db_, "[noop]\n");
  ASSERT_TRUE(daemon.waitReady());
  const std::string id = scalar(
      R"(SELECT jobd.enqueue('noop', '{"result": "done"}', scheduled_start => now() + interval '1 second'))");
  ProcessResult waited = jobd({"wait", id, "--timeout", "30s"});
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_EQ(waited.out, "\"done\"\n");
}

}  // namespace
}  // namespace jobd
