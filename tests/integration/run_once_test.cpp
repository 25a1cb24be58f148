// `jobd run-once` (SPEC §7), after Launchpad's test_process_job_source.py:
// the lock-file lines, the counts, and the exit status.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "daemon.hpp"

namespace jobd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ProcessResult;
using testing::runJobd;
using testing::TestDatabase;

class RunOnceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    lock_dir_ = ::testing::TempDir() + "jobd_locks_" + db_.name() + "_" + std::to_string(counter++);
    mkdir(lock_dir_.c_str(), 0755);
    config_ = lock_dir_ + "/jobd.conf";
    std::ofstream(config_) << "[jobd]\nlock_dir: " << lock_dir_
                           << "\n[noop]\n[fail]\n[sleep]\nconcurrency: 2\n";
  }

  ProcessResult runOnce(const std::vector<std::string>& sections) {
    std::vector<std::string> args = {"--config", config_, "--database", db_.conninfo(), "run-once"};
    args.insert(args.end(), sections.begin(), sections.end());
    return runJobd(args);
  }

  std::string lockPath(const std::string& section) const {
    return lock_dir_ + "/jobd-" + section + ".lock";
  }

  // The messages of the log lines, without time and level.
  static std::vector<std::string> messages(const std::string& log) {
    std::vector<std::string> out;
    std::istringstream lines(log);
    std::string line;
    while (std::getline(lines, line)) {
      std::size_t time_end = line.find(' ');
      std::size_t message = line.find_first_not_of(' ', line.find(' ', time_end + 1));
      out.push_back(message == std::string::npos ? line : line.substr(message));
    }
    return out;
  }

  TestDatabase db_;
  std::string lock_dir_;
  std::string config_;
};

TEST_F(RunOnceTest, EmptyQueue) {
  ProcessResult result = runOnce({"noop"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.err, HasSubstr("Creating lockfile: " + lockPath("noop")));
  EXPECT_THAT(result.err, ::testing::Not(HasSubstr("Ran ")));
  EXPECT_THAT(result.err, ::testing::Not(HasSubstr("job sources failed")));
}

TEST_F(RunOnceTest, LockHeldFailsTheSection) {
  int fd = open(lockPath("noop").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  db_.scalar("SELECT jobd.enqueue('noop')");
  ProcessResult result = runOnce({"noop"});
  close(fd);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(messages(result.err),
              ElementsAre("Creating lockfile: " + lockPath("noop"),
                          "Lockfile " + lockPath("noop") + " in use", "1 job sources failed."));
  EXPECT_EQ(db_.scalar("SELECT status FROM jobd.job"), "0");
}

TEST_F(RunOnceTest, RunsEveryReadyJobOnce) {
  std::string done = db_.scalar("SELECT jobd.enqueue('noop')");
  db_.scalar("SELECT jobd.enqueue('sleep', '{\"ms\": 10}') FROM generate_series(1, 5)");
  std::string failing = db_.scalar("SELECT jobd.enqueue('fail', '{\"error\": \"oops\"}')");
  std::string later =
      db_.scalar("SELECT jobd.enqueue('noop', scheduled_start => now() + interval '1 hour')");
  ProcessResult result = runOnce({"noop", "sleep", "fail"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::vector<std::string> lines = messages(result.err);
  EXPECT_THAT(lines, ::testing::Contains("Ran 1 noop jobs."));
  EXPECT_THAT(lines, ::testing::Contains("Ran 5 sleep jobs."));
  EXPECT_THAT(lines, ::testing::Contains("1 fail jobs did not complete."));
  EXPECT_EQ(db_.scalar("SELECT status FROM jobd.job WHERE id = " + done), "2");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'sleep' AND status = 2"),
            "5");
  EXPECT_EQ(db_.scalar("SELECT status FROM jobd.job WHERE id = " + failing), "3");
  EXPECT_EQ(db_.scalar("SELECT status FROM jobd.job WHERE id = " + later), "0");
}

TEST_F(RunOnceTest, UnknownSectionFailsOthersRun) {
  db_.scalar("SELECT jobd.enqueue('noop')");
  ProcessResult result = runOnce({"nosuch", "noop"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("No enabled section [nosuch]"));
  EXPECT_THAT(messages(result.err), ::testing::Contains("Ran 1 noop jobs."));
  EXPECT_THAT(messages(result.err), ::testing::Contains("1 job sources failed."));
}

TEST_F(RunOnceTest, NoSectionIsAUsageError) {
  ProcessResult result = runOnce({});
  EXPECT_EQ(result.exit_code, 64);
  EXPECT_THAT(result.err, HasSubstr("run-once SECTION..."));
}

}  // namespace
}  // namespace jobd
