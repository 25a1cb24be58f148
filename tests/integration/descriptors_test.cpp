// A job's program starts with its stdin, stdout and stderr and nothing of
// the daemon's: no HTTP listener, no database socket (issue 18, item 6).
// Before, an `exec` job saw the metrics listener, and a grandchild that
// outlived its job kept the port bound across a restart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon.hpp"
#include "http_client.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TestDatabase;
using testing::waitForValue;

// What each descriptor of the job's shell points to, one per line.
std::string descriptorsSeenBy(const std::string& runner) {
  TestDatabase db;
  const std::string out = ::testing::TempDir() + "jobd_fds_" + runner + "_" + db.name();
  std::filesystem::remove(out);
  Daemon daemon(db, "[jobd]\nmetrics_listen: 127.0.0.1:0\n[fds]\nhandler: exec\nrunner: " + runner +
                        "\ncommand: /bin/sh -c \"for f in /proc/$$/fd/*; do echo ${f##*/} "
                        "$(readlink $f); done > " +
                        out + "\"\n");
  EXPECT_TRUE(daemon.waitReady());
  // The HTTP listener is open and has answered a request before the job
  // starts: its socket is the descriptor a child must not inherit.
  EXPECT_EQ(testing::httpGet(testing::baseUrl(daemon.process()) + "/healthz").status, 200);
  std::string id = db.scalar("SELECT jobd.enqueue('fds')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2"), "2")
      << daemon.log();
  EXPECT_EQ(daemon.stop().exit_code, 0);
  std::ifstream in(out);
  std::stringstream seen;
  seen << in.rdbuf();
  std::filesystem::remove(out);
  return seen.str();
}

TEST(DescriptorsTest, AThreadRunnersChildInheritsNoSocket) {
  std::string seen = descriptorsSeenBy("thread");
  EXPECT_THAT(seen, HasSubstr("0 "));
  EXPECT_THAT(seen, Not(HasSubstr("socket:"))) << seen;
}

TEST(DescriptorsTest, AProcessRunnersChildInheritsNoSocket) {
  std::string seen = descriptorsSeenBy("process");
  EXPECT_THAT(seen, HasSubstr("0 "));
  EXPECT_THAT(seen, Not(HasSubstr("socket:"))) << seen;
}

}  // namespace
}  // namespace jobd
