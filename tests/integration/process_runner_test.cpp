// runner = process (SPEC §3), after Launchpad's TwistedJobRunner tests: jobs
// run in `jobd __worker` children that are reused after a success and
// replaced after a failure, stopped at the timeout, limited by
// memory_limit; a crash is an OOPS and the outcome `crashed`. Also the
// stuck-thread report of `runner = thread`.
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;

// The runner pid of each finished job, from its JOB_FINISHED line.
std::map<std::string, std::string> runnerPids(const std::string& log) {
  std::map<std::string, std::string> pids;
  static const std::regex line(R"(JOB_FINISHED id=(\d+) .* runner_pid=(\d+))");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it) {
    pids[(*it)[1]] = (*it)[2];
  }
  return pids;
}

std::string jobStatus(const TestDatabase& db, const std::string& id) {
  return db.scalar("SELECT status FROM jobd.job WHERE id = " + id);
}

// Launchpad's test_timeout_short: with a 5 s timeout, a job sleeping 30 s
// is stopped (SIGTERM, then SIGKILL) and FAILED with TimeoutError, while a
// quick job in the same section completes.
TEST(ProcessRunnerTest, TimeoutStopsTheSlowJobWhileAQuickOneCompletesConcurrently) {
  TestDatabase db;
  Daemon daemon(db, R"(
[slow]
handler: sleep
runner: process
concurrency: 2
timeout: 5s
kill_grace: 1s
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string slow = db.scalar("SELECT jobd.enqueue('slow', '{\"ms\": 30000}')");
  std::string quick = db.scalar("SELECT jobd.enqueue('slow', '{\"ms\": 100}')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + quick, "2",
                         std::chrono::seconds(4)),
            "2");
  EXPECT_EQ(jobStatus(db, slow), "1") << "the slow job must still be running then";
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + slow, "3",
                         std::chrono::seconds(15)),
            "3");
  EXPECT_EQ(db.scalar("SELECT type || ': ' || value FROM jobd.oops WHERE job_id = " + slow),
            "TimeoutError: Job ran too long.");
  EXPECT_EQ(db.scalar("SELECT outcome FROM jobd.job_attempt WHERE job_id = " + slow), "timeout");
  // The timeout counts from the claim's send (JobRepository::claim), a
  // little before the server's now() that date_started records: a claim
  // prepared on a slow first round trip (seen under ThreadSanitizer) leaves
  // just under 5 s between the two columns.
  EXPECT_EQ(db.scalar("SELECT date_finished - date_started BETWEEN interval '4.5 s' AND "
                      "interval '9 s' FROM jobd.job WHERE id = " +
                      slow),
            "t");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// Launchpad's runner tests: after successful jobs the child is reused;
// after a failed job the next job runs in a new child.
TEST(ProcessRunnerTest, ChildReusedAfterSuccessReplacedAfterFailure) {
  TestDatabase db;
  Daemon daemon(db, R"(
[proc]
handler: sleep
runner: process
)");
  ASSERT_TRUE(daemon.waitReady());
  std::vector<std::string> ids;
  for (const char* data : {R"({"ms": 1})", R"({"ms": 1})", R"({"ms": "bad"})", R"({"ms": 1})"}) {
    ids.push_back(db.scalar(std::string("SELECT jobd.enqueue('proc', '") + data + "')"));
  }
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status IN (2, 3)", "4"), "4");
  ASSERT_TRUE(daemon.waitForLog("JOB_FINISHED id=" + ids[3]));
  EXPECT_EQ(jobStatus(db, ids[2]), "3");  // a user error
  std::map<std::string, std::string> pids = runnerPids(daemon.log());
  ASSERT_EQ(pids.size(), 4U) << daemon.log();
  EXPECT_EQ(pids[ids[0]], pids[ids[1]]) << "reused after a success";
  EXPECT_EQ(pids[ids[1]], pids[ids[2]]) << "reused after a success";
  EXPECT_NE(pids[ids[2]], pids[ids[3]]) << "replaced after a failure";
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// memory_limit is the runner's address-space limit: a job that maps past
// it fails with an OOPS; one that stays under it completes.
TEST(ProcessRunnerTest, MemoryHogFailsWithAnOops) {
  TestDatabase db;
  Daemon daemon(db, R"(
[hog]
handler: fail
runner: process
drills: true
memory_limit: 256M
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string small =
      db.scalar("SELECT jobd.enqueue('hog', '{\"error\": \"memory\", \"bytes\": 16777216}')");
  std::string big =
      db.scalar("SELECT jobd.enqueue('hog', '{\"error\": \"memory\", \"bytes\": 1073741824}')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + small, "2"), "2");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + big, "3"), "3");
  EXPECT_EQ(db.scalar("SELECT type FROM jobd.oops WHERE job_id = " + big), "std::bad_alloc");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// A runner that dies of SIGSEGV: an OOPS with the signal and attempt
// outcome `crashed` each time; the job goes back while attempts remain
// (attempts are counted at claim), then FAILED: no crash loop.
TEST(ProcessRunnerTest, CrashingEveryTimeFailsAfterMaxRetriesPlusOne) {
  TestDatabase db;
  Daemon daemon(db, R"(
[crash]
handler: fail
runner: process
drills: true
max_retries: 2
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string id = db.scalar("SELECT jobd.enqueue('crash', '{\"error\": \"crash\"}')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "3"), "3");
  EXPECT_EQ(db.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + id), "3");
  EXPECT_EQ(db.scalar("SELECT string_agg(outcome, ',' ORDER BY attempt) FROM jobd.job_attempt "
                      "WHERE job_id = " +
                      id),
            "crashed,crashed,crashed");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops WHERE job_id = " + id +
                      " AND type = "
                      "'Signal11' AND value LIKE '%killed by signal 11%'"),
            "3");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt a JOIN jobd.oops o ON o.id = "
                      "a.oops_id WHERE a.job_id = " +
                      id),
            "3");
  // The daemon itself is unharmed.
  std::string after = db.scalar("SELECT jobd.enqueue('crash', '{\"error\": \"user\"}')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + after, "3"), "3");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// A database handler in a process runner: its work and the COMPLETED mark
// commit together in the child, after the daemon confirms the lease.
TEST(ProcessRunnerTest, SqlWorkCommitsWithCompletionInTheChild) {
  TestDatabase db;
  db.scalar("CREATE TABLE done (job_id bigint PRIMARY KEY)");
  Daemon daemon(db, R"(
[record]
handler: sql
runner: process
statement: INSERT INTO done VALUES ($2)
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string first = db.scalar("SELECT jobd.enqueue('record')");
  std::string second = db.scalar("SELECT jobd.enqueue('record')");
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 2", "2"), "2");
  EXPECT_EQ(db.scalar("SELECT string_agg(job_id::text, ',' ORDER BY job_id) FROM done"),
            first + "," + second);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt"), "0");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

struct ProcessCounts {
  int fds = 0;
  int threads = 0;
  int children = 0;
  int zombies = 0;
};

int entriesIn(const std::string& dir) {
  int n = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      n += e->d_name[0] != '.';
    }
    closedir(d);
  }
  return n;
}

ProcessCounts countsOf(pid_t pid) {
  ProcessCounts c;
  c.fds = entriesIn("/proc/" + std::to_string(pid) + "/fd");
  c.threads = entriesIn("/proc/" + std::to_string(pid) + "/task");
  DIR* proc = opendir("/proc");
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') {
      continue;
    }
    std::optional<testing::ProcStat> stat = testing::procStat(std::atoi(e->d_name));
    if (stat && stat->ppid == pid) {
      ++c.children;
      c.zombies += stat->state == 'Z';
    }
  }
  closedir(proc);
  return c;
}

// 1,000 process-runner jobs, one in twenty a failure that replaces its
// child: afterwards the daemon holds as many descriptors and threads as
// before, and no more children than its concurrency, none a zombie.
TEST(ProcessRunnerTest, NoLeaksAcrossAThousandJobs) {
  TestDatabase db;
  Daemon daemon(db, R"(
[proc]
handler: sleep
runner: process
concurrency: 4
lease_duration: 3s
)");
  ASSERT_TRUE(daemon.waitReady());
  auto finished = [&](int n) {
    return waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status IN (2, 3)",
                        std::to_string(n), std::chrono::seconds(120));
  };
  // The warm-up's long job outlasts a lease renewal (a third of
  // lease_duration): every connection and timer of a daemon at work (the
  // renewals' connection opens before the first claim; the cleaner's at the
  // first roll-up, below) is among the descriptors counted before.
  db.scalar("SELECT jobd.enqueue('proc', '{\"ms\": 0}') FROM generate_series(1, 19)");
  db.scalar("SELECT jobd.enqueue('proc', '{\"ms\": 2500}')");
  ASSERT_EQ(finished(20), "20");
  // The cleaner's connection opens at the first roll-up of the trends (10 s
  // after the start), which has rolled up these jobs' type once it has.
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job_minute_rolled WHERE job_type = 'proc'",
                         "1", std::chrono::seconds(30)),
            "1");
  ProcessCounts before = countsOf(daemon.process().pid());
  db.scalar(
      "SELECT jobd.enqueue('proc', CASE WHEN i % 20 = 0 THEN '{\"ms\": \"bad\"}' ELSE "
      "'{\"ms\": 0}' END::jsonb) FROM generate_series(1, 1000) AS i");
  ASSERT_EQ(finished(1020), "1020");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 3"), "50");
  // Replaced children are reaped shortly after their job's outcome. Each
  // live child holds two of the daemon's descriptors (its socket, its
  // stderr); every other descriptor must be as before.
  auto ownFds = [](const ProcessCounts& c) { return c.fds - 2 * c.children; };
  ProcessCounts after;
  for (int i = 0; i < 100; ++i) {
    after = countsOf(daemon.process().pid());
    if (ownFds(after) == ownFds(before) && after.children <= 4 && after.zombies == 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(ownFds(after), ownFds(before));
  EXPECT_EQ(after.threads, before.threads);
  EXPECT_LE(after.children, 4);
  EXPECT_GE(after.children, 1);
  EXPECT_EQ(after.zombies, 0);
  EXPECT_EQ(daemon.stop().exit_code, 0);
  EXPECT_EQ(countsOf(daemon.process().pid()).children, 0);
}

// A thread job that ignores its cancellation is reported stuck kill_grace
// after its timeout and holds its slot until it returns; the daemon keeps
// serving the section's other slot and other sections.
TEST(ProcessRunnerTest, StuckThreadIsReportedWhileOthersRunConcurrently) {
  TestDatabase db;
  Daemon daemon(db, R"(
[stubborn]
handler: sleep
drills: true
concurrency: 2
timeout: 1s
kill_grace: 500ms
[noop]
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string stuck =
      db.scalar("SELECT jobd.enqueue('stubborn', '{\"ms\": 4000, \"ignore_cancel\": true}')");
  ASSERT_TRUE(daemon.waitForLog("JOB_STUCK id=" + stuck, std::chrono::seconds(5)));
  std::string other = db.scalar("SELECT jobd.enqueue('stubborn', '{\"ms\": 1}')");
  std::string noop = db.scalar("SELECT jobd.enqueue('noop')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + other, "2",
                         std::chrono::seconds(5)),
            "2");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + noop, "2",
                         std::chrono::seconds(5)),
            "2");
  EXPECT_EQ(jobStatus(db, stuck), "1");
  // When it returns at last, it is still the timeout it was.
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + stuck, "3",
                         std::chrono::seconds(10)),
            "3");
  EXPECT_EQ(db.scalar("SELECT log FROM jobd.job WHERE id = " + stuck),
            "TimeoutError: Job ran too long.");
  EXPECT_THAT(daemon.log(), HasSubstr("JOB_UNSTUCK id=" + stuck));
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// When every slot of a section is stuck only a restart frees them: the
// daemon drains, releases the stuck job to WAITING with its attempt given
// back, and exits with status 1 (systemd restarts it).
TEST(ProcessRunnerTest, AllSlotsStuckExitsNonZero) {
  TestDatabase db;
  Daemon daemon(db, R"(
[jobd]
drain_timeout: 1s
[stubborn]
handler: sleep
drills: true
timeout: 1s
kill_grace: 500ms
)");
  ASSERT_TRUE(daemon.waitReady());
  std::string stuck =
      db.scalar("SELECT jobd.enqueue('stubborn', '{\"ms\": 60000, \"ignore_cancel\": true}')");
  testing::ProcessResult result = daemon.process().wait(std::chrono::seconds(20));
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_THAT(result.err, HasSubstr("DAEMON_STUCK every slot of section [stubborn] is stuck"));
  EXPECT_THAT(result.err, HasSubstr("DRAIN_TIMEOUT released 1 jobs"));
  EXPECT_THAT(result.err, HasSubstr("with 1 jobs that never returned"));
  EXPECT_EQ(db.scalar("SELECT status || '/' || attempt_count FROM jobd.job WHERE id = " + stuck),
            "0/0");
  EXPECT_EQ(db.scalar("SELECT outcome FROM jobd.job_attempt WHERE job_id = " + stuck), "released");
}

// Fault drills are opt-in per section (issue 18, item 12): without
// `drills: true` a payload asking for a crash, a memory hog or an ignored
// timeout is a user error and nothing of it runs; before, any payload could
// take a thread runner's daemon down.
TEST(ProcessRunnerTest, DrillsRunOnlyInSectionsThatAskForThem) {
  TestDatabase db;
  Daemon daemon(db, "[fail]\n[sleep]\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string crash = db.scalar("SELECT jobd.enqueue('fail', '{\"error\": \"crash\"}')");
  std::string memory =
      db.scalar("SELECT jobd.enqueue('fail', '{\"error\": \"memory\", \"bytes\": 1099511627776}')");
  std::string stuck =
      db.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 600000, \"ignore_cancel\": true}')");
  for (const std::string& id : {crash, memory, stuck}) {
    EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "3"), "3");
  }
  EXPECT_EQ(db.scalar("SELECT log FROM jobd.job WHERE id = " + crash),
            "fail: the crash drill is off in this section (drills: true turns it on)");
  EXPECT_EQ(db.scalar("SELECT log FROM jobd.job WHERE id = " + stuck),
            "sleep: the ignore_cancel drill is off in this section (drills: true turns it on)");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops"), "0");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
