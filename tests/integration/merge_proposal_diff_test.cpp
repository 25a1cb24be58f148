// merge_proposal_diff against real git repositories built by the test:
// branches, a merge, a conflict, a binary file and a rename; the stored
// diff and diffstat are checked against `git diff` run by the test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/host.hpp"
#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// main: base, then a change of its own; feature: edits, a rename, a
// binary change, a merge of main; conflict: edits the line main edited.
constexpr const char* kBuild = R"sh(
set -e
git init -q -b main "$1"
cd "$1"
git config user.email test@example.com
git config user.name Test
seq 1 10 | sed 's/^/line /' > file.txt
seq 1 50 > old-name.txt
printf '\000\001\002binary' > blob.bin
git add . && git commit -qm base
git checkout -qb feature
sed -i 's/^line 2$/line TWO/' file.txt
echo 'line 11' >> file.txt
git mv old-name.txt new-name.txt
echo 51 >> new-name.txt
printf '\000\003binary2' > blob.bin
echo 'a new file' > added.txt
git add -A && git commit -qm feature
git checkout -q main
echo 'main only' > main.txt
sed -i 's/^line 6$/line SIX/' file.txt
git add -A && git commit -qm main-change
git checkout -q feature
git merge -q --no-edit main
echo 'after merge' >> added.txt
git commit -qam after-merge
git checkout -q -b conflict main~1
sed -i 's/^line 6$/line 6 (conflicting)/' file.txt
git commit -qam conflicting
git checkout -q main
)sh";

class MergeProposalDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "jobd_repos_" + db_.name();
    repo_ = root_ + "/project";
    fs::remove_all(root_);
    fs::create_directories(root_);
    testing::ProcessResult built = testing::runProcess({"/bin/sh", "-c", kBuild, "sh", repo_});
    ASSERT_EQ(built.exit_code, 0) << built.err;
  }
  void TearDown() override { fs::remove_all(root_); }

  // The section, with repository_root (required) and `extra` keys.
  std::string config(const std::string& extra = "") const {
    return "[merge_proposal_diff]\nrepository_root: " + root_ + "\n" + extra;
  }

  std::string git(const std::string& args) const {
    testing::ProcessResult r =
        testing::runProcess({"/bin/sh", "-c", "git -C \"$0\" " + args, repo_});
    EXPECT_EQ(r.exit_code, 0) << args << ": " << r.err;
    return r.out;
  }

  std::string enqueue(int proposal, const std::string& source, const std::string& target,
                      const std::string& repository = "") {
    nlohmann::json data = {{"merge_proposal", proposal},
                           {"repository", repository.empty() ? repo_ : repository},
                           {"source", source},
                           {"target", target}};
    return db_.scalar("SELECT jobd.acquire('merge_proposal_diff', 'merge_proposal:" +
                      std::to_string(proposal) + "', " + "$j$" + data.dump() + "$j$::jsonb" + ")");
  }

  TestDatabase db_;
  std::string root_;
  std::string repo_;
};

TEST_F(MergeProposalDiffTest, StoresTheMergeBaseDiffAndDiffstat) {
  Daemon daemon(db_, config());
  ASSERT_TRUE(daemon.waitReady());
  std::string feature = enqueue(1, "feature", "main");
  std::string conflict = enqueue(2, "conflict", "main");
  for (const std::string& id : {feature, conflict}) {
    ASSERT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "2"), "2")
        << db_.scalar("SELECT log FROM jobd.job WHERE id = " + id);
  }
  for (const auto& [proposal, source] :
       std::vector<std::pair<std::string, std::string>>{{"1", "feature"}, {"2", "conflict"}}) {
    SCOPED_TRACE(source);
    std::string base = git("merge-base main " + source);
    base.pop_back();
    std::string expected =
        git("diff --no-color --no-ext-diff --find-renames " + base + " " + source);
    std::string row = "FROM jobd.merge_proposal_diff WHERE merge_proposal = " + proposal;
    EXPECT_EQ(db_.scalar("SELECT diff " + row), expected);
    EXPECT_EQ(db_.scalar("SELECT merge_base " + row), base);
    EXPECT_EQ(db_.scalar("SELECT source_commit " + row) + "\n", git("rev-parse " + source));
    EXPECT_EQ(db_.scalar("SELECT target_commit " + row) + "\n", git("rev-parse main"));
    EXPECT_EQ(db_.scalar("SELECT truncated " + row), "f");
    // The diffstat, from git's own numbers.
    long added = 0, removed = 0, files = 0;
    std::istringstream numstat(git("diff --numstat --find-renames " + base + " " + source));
    std::string a, r, rest;
    while (numstat >> a >> r && std::getline(numstat, rest)) {
      ++files;
      added += a == "-" ? 0 : std::stol(a);
      removed += r == "-" ? 0 : std::stol(r);
    }
    EXPECT_EQ(db_.scalar("SELECT concat_ws('/', files_changed, lines_added, lines_removed) " + row),
              std::to_string(files) + "/" + std::to_string(added) + "/" + std::to_string(removed));
  }
  std::string stored =
      db_.scalar("SELECT diff FROM jobd.merge_proposal_diff WHERE merge_proposal = 1");
  EXPECT_THAT(stored, HasSubstr("rename from old-name.txt"));
  EXPECT_THAT(stored, HasSubstr("Binary files a/blob.bin and b/blob.bin differ"));
  EXPECT_THAT(stored, ::testing::Not(HasSubstr("main.txt")));  // the target's own change
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

TEST_F(MergeProposalDiffTest, TruncatesLargeDiffs) {
  Daemon daemon(db_, config("max_diff_size: 200\n"));
  ASSERT_TRUE(daemon.waitReady());
  std::string id = enqueue(1, "feature", "main");
  ASSERT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "2"), "2");
  EXPECT_EQ(db_.scalar("SELECT concat_ws('/', truncated, octet_length(diff) <= 200, diff_bytes > "
                       "200) FROM jobd.merge_proposal_diff"),
            "t/t/t");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

TEST_F(MergeProposalDiffTest, MissingRefIsAUserErrorLockedRepositoryARetry) {
  Daemon daemon(db_, config("max_retries: 3\nretry_delay: 1s\n"));
  ASSERT_TRUE(daemon.waitReady());
  std::string missing = enqueue(1, "no-such-branch", "main");
  ASSERT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + missing, "3"), "3");
  EXPECT_THAT(db_.scalar("SELECT log FROM jobd.job WHERE id = " + missing),
              HasSubstr("no commit no-such-branch in " + repo_));
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobd.oops"), "0");

  std::ofstream(repo_ + "/.git/index.lock") << "";
  std::string locked = enqueue(2, "feature", "main");
  ASSERT_EQ(
      waitForValue(db_, "SELECT count(*) FROM jobd.job_attempt WHERE job_id = " + locked, "1"),
      "1");
  EXPECT_EQ(db_.scalar("SELECT outcome || ' ' || error_type FROM jobd.job_attempt WHERE job_id = " +
                       locked),
            "retry RepositoryLocked");
  fs::remove(repo_ + "/.git/index.lock");
  EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + locked, "2"), "2");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// git gc's rule for gc.pid: a live gc on this host (the test's own pid
// here) or any on another host locks the repository; a gc.pid naming a
// process that is gone, or older than 12 hours, is left over and ignored.
// Before issue 18 any gc.pid locked it until the retries ran out.
TEST_F(MergeProposalDiffTest, OnlyTheGcPidOfARunningGcLocks) {
  Daemon daemon(db_, config("max_retries: 5\nretry_delay: 1s\n"));
  ASSERT_TRUE(daemon.waitReady());
  const std::string pid_file = repo_ + "/.git/gc.pid";
  std::ofstream(pid_file) << ::getpid() << " " << hostName();
  std::string live = enqueue(1, "feature", "main");
  ASSERT_EQ(waitForValue(db_, "SELECT count(*) FROM jobd.job_attempt WHERE job_id = " + live, "1"),
            "1");
  EXPECT_EQ(db_.scalar("SELECT error_type FROM jobd.job_attempt WHERE job_id = " + live),
            "RepositoryLocked");

  // A child that has exited and been reaped: its pid names no process.
  pid_t dead = ::fork();
  if (dead == 0) {
    ::_exit(0);
  }
  ::waitpid(dead, nullptr, 0);
  std::ofstream(pid_file) << dead << " " << hostName();
  EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + live, "2", 20s), "2")
      << db_.scalar("SELECT log FROM jobd.job WHERE id = " + live);

  std::ofstream(pid_file) << dead << " another-host.example.com";
  std::string remote = enqueue(2, "feature", "main");
  ASSERT_EQ(
      waitForValue(db_, "SELECT count(*) FROM jobd.job_attempt WHERE job_id = " + remote, "1"),
      "1");
  fs::last_write_time(pid_file, fs::file_time_type::clock::now() - std::chrono::hours(13));
  EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + remote, "2", 20s), "2");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// repository_root holds even against `..` and symbolic links, and a
// repository's own configuration runs no command (textconv, external
// diff). Before issue 18 "<root>/x/.." and a link under the root passed,
// and git ran the textconv command.
TEST_F(MergeProposalDiffTest, TheRepositoryStaysUnderItsRootAndItsConfigurationRunsNothing) {
  const std::string outside = ::testing::TempDir() + "jobd_outside_" + db_.name();
  fs::remove_all(outside);
  fs::copy(repo_, outside, fs::copy_options::recursive);
  fs::create_directory_symlink(outside, root_ + "/link");
  Daemon daemon(db_, config());
  ASSERT_TRUE(daemon.waitReady());
  std::string dotdot = enqueue(1, "feature", "main", repo_ + "/..");
  std::string dotdot_in = enqueue(
      2, "feature", "main", root_ + "/../" + fs::path(root_).filename().string() + "/project");
  std::string link = enqueue(3, "feature", "main", root_ + "/link");
  for (const std::string& id : {dotdot, dotdot_in, link}) {
    EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "3"), "3");
  }
  EXPECT_THAT(db_.scalar("SELECT log FROM jobd.job WHERE id = " + dotdot), HasSubstr(". or .."));
  EXPECT_THAT(db_.scalar("SELECT log FROM jobd.job WHERE id = " + link),
              HasSubstr("is outside " + root_));

  const std::string marker = root_ + "/textconv-ran";
  git("config diff.evil.textconv 'touch " + marker + " && cat'");
  git("config diff.external 'touch " + marker + "-ext'");
  std::ofstream(repo_ + "/.gitattributes") << "*.txt diff=evil\n";
  std::string diffed = enqueue(4, "feature", "main");
  EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + diffed, "2"), "2")
      << db_.scalar("SELECT log FROM jobd.job WHERE id = " + diffed);
  EXPECT_FALSE(fs::exists(marker));
  EXPECT_FALSE(fs::exists(marker + "-ext"));
  EXPECT_EQ(db_.scalar("SELECT repository FROM jobd.merge_proposal_diff WHERE merge_proposal = 4"),
            repo_);
  EXPECT_EQ(daemon.stop().exit_code, 0);
  fs::remove_all(outside);
}

// git is handed the repository (review of issue 18, item 15): never left
// to search above a directory that is no repository, never led elsewhere
// by a `.git` file or link, and none of the daemon's GIT_* variables
// reaches it (GIT_TRACE would write the file below).
TEST_F(MergeProposalDiffTest, GitIsGivenTheRepositoryAndNothingOfTheDaemonsGitEnvironment) {
  const std::string outside = ::testing::TempDir() + "jobd_outside2_" + db_.name();
  fs::remove_all(outside);
  fs::copy(repo_, outside, fs::copy_options::recursive);
  // The root itself a repository: a plain directory under it is not one.
  ASSERT_EQ(testing::runProcess({"git", "init", "-q", root_}).exit_code, 0);
  fs::create_directories(root_ + "/plain");
  fs::create_directories(root_ + "/gitfile");
  std::ofstream(root_ + "/gitfile/.git") << "gitdir: " << outside << "/.git\n";
  fs::create_directories(root_ + "/gitlink");
  fs::create_directory_symlink(outside + "/.git", root_ + "/gitlink/.git");
  const std::string trace = root_ + "/git-trace";
  Daemon daemon(
      db_, config(), {},
      {{"GIT_TRACE", trace}, {"GIT_DIR", outside + "/.git"}, {"GIT_CEILING_DIRECTORIES", ""}});
  ASSERT_TRUE(daemon.waitReady());
  std::string plain = enqueue(1, "feature", "main", root_ + "/plain");
  std::string gitfile = enqueue(2, "feature", "main", root_ + "/gitfile");
  std::string gitlink = enqueue(3, "feature", "main", root_ + "/gitlink");
  std::string good = enqueue(4, "feature", "main");
  for (const std::string& id : {plain, gitfile, gitlink}) {
    EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "3"), "3");
  }
  EXPECT_THAT(db_.scalar("SELECT log FROM jobd.job WHERE id = " + plain),
              HasSubstr("is not a git repository"));
  EXPECT_THAT(db_.scalar("SELECT log FROM jobd.job WHERE id = " + gitfile),
              HasSubstr("has a .git file"));
  EXPECT_THAT(db_.scalar("SELECT log FROM jobd.job WHERE id = " + gitlink),
              HasSubstr("is outside " + root_));
  EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + good, "2"), "2")
      << db_.scalar("SELECT log FROM jobd.job WHERE id = " + good);
  EXPECT_FALSE(fs::exists(trace));
  EXPECT_EQ(daemon.stop().exit_code, 0);
  fs::remove_all(outside);
}

// A burst of pushes: 50 acquire calls for one proposal make one waiting job.
TEST_F(MergeProposalDiffTest, BurstOfAcquiresMakesOneJob) {
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    ids.insert(enqueue(7, "feature", "main"));
  }
  EXPECT_EQ(ids.size(), 1U);
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND target = "
                       "'merge_proposal:7'"),
            "1");
}

}  // namespace
}  // namespace jobd
