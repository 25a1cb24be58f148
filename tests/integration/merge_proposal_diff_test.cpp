// merge_proposal_diff against real git repositories built by the test:
// branches, a merge, a conflict, a binary file and a rename; the stored
// diff and diffstat are checked against `git diff` run by the test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;
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
    repo_ = ::testing::TempDir() + "jobd_repo_" + db_.name();
    fs::remove_all(repo_);
    testing::ProcessResult built = testing::runProcess({"/bin/sh", "-c", kBuild, "sh", repo_});
    ASSERT_EQ(built.exit_code, 0) << built.err;
  }
  void TearDown() override { fs::remove_all(repo_); }

  std::string git(const std::string& args) const {
    testing::ProcessResult r =
        testing::runProcess({"/bin/sh", "-c", "git -C \"$0\" " + args, repo_});
    EXPECT_EQ(r.exit_code, 0) << args << ": " << r.err;
    return r.out;
  }

  std::string enqueue(int proposal, const std::string& source, const std::string& target) {
    nlohmann::json data = {{"merge_proposal", proposal},
                           {"repository", repo_},
                           {"source", source},
                           {"target", target}};
    return db_.scalar("SELECT jobd.acquire('merge_proposal_diff', 'merge_proposal:" +
                      std::to_string(proposal) + "', " + "$j$" + data.dump() + "$j$::jsonb" + ")");
  }

  TestDatabase db_;
  std::string repo_;
};

TEST_F(MergeProposalDiffTest, StoresTheMergeBaseDiffAndDiffstat) {
  Daemon daemon(db_, "[merge_proposal_diff]\n");
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
  Daemon daemon(db_, "[merge_proposal_diff]\nmax_diff_size: 200\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string id = enqueue(1, "feature", "main");
  ASSERT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "2"), "2");
  EXPECT_EQ(db_.scalar("SELECT concat_ws('/', truncated, octet_length(diff) <= 200, diff_bytes > "
                       "200) FROM jobd.merge_proposal_diff"),
            "t/t/t");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

TEST_F(MergeProposalDiffTest, MissingRefIsAUserErrorLockedRepositoryARetry) {
  Daemon daemon(db_, "[merge_proposal_diff]\nmax_retries: 3\nretry_delay: 1s\n");
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
