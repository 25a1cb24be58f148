// Bad inputs (RELIABILITY.md, scenario 7): payloads from 64 KiB to 100 MiB
// against the default max_payload (1M), and strings that break naive
// quoting, round-tripped through enqueue, `show --json` and exec.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "harness.hpp"

namespace jobd::reliability {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;

// The daemon's peak resident memory, from /proc/<pid>/status (VmHWM), MiB.
double peakMiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::stod(line.substr(6)) / 1024;
    }
  }
  return 0;
}

// 64 KiB and 1 MiB (exactly max_payload) run; 16 MiB and 100 MiB fail with
// PayloadTooLarge without running, and the daemon's memory stays bounded:
// the oversized payload is measured in the database, never fetched.
TEST(ReliabilityInputs, PayloadSizes) {
  TestDatabase db;
  Daemon daemon(db, "[jobd]\npoll_interval: 1s\n[noop]\n");
  ASSERT_TRUE(daemon.waitReady());
  double before = peakMiB(daemon.process().pid());
  std::map<std::string, long long> sizes = {
      {"64KiB", 64LL << 10}, {"1MiB", 1LL << 20}, {"16MiB", 16LL << 20}, {"100MiB", 100LL << 20}};
  std::map<std::string, std::string> ids;
  for (const auto& [name, bytes] : sizes) {
    // {"pad": "xxx..."}: 11 bytes of JSON around the string.
    ids[name] = db.scalar("SELECT jobd.enqueue('noop', jsonb_build_object('pad', repeat('x', " +
                          std::to_string(bytes - 11) + ")))");
    EXPECT_EQ(
        db.scalar("SELECT octet_length(json_data::text) FROM jobd.job WHERE id = " + ids[name]),
        std::to_string(bytes));
  }
  for (const auto& [name, id] : ids) {
    SCOPED_TRACE(name);
    bool small = sizes[name] <= (1LL << 20);
    std::string want = small ? "2" : "3";
    EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, want), want)
        << daemon.log();
    if (!small) {
      EXPECT_THAT(db.scalar("SELECT log FROM jobd.job WHERE id = " + id),
                  HasSubstr("PayloadTooLarge"));
    }
  }
  double after = peakMiB(daemon.process().pid());
  EXPECT_LT(after - before, 64) << "peak RSS grew from " << before << " to " << after << " MiB";
  EXPECT_EQ(daemon.stop().exit_code, 0);
  report(
      "payload sizes",
      {{"payloads", sizes.size()}, {"peak_rss_before_mib", before}, {"peak_rss_after_mib", after}});
}

// Strings that break naive quoting come back byte for byte from `jobd show
// --json`, and reach an exec job's stdin unchanged.
TEST(ReliabilityInputs, HostileStringsRoundTrip) {
  TestDatabase db;
  std::string out = ::testing::TempDir() + db.name() + ".stdin";
  Daemon daemon(
      db, "[jobd]\npoll_interval: 1s\n[echo]\nhandler: exec\ncommand: /bin/sh -c 'cat > " + out +
              "'\n");
  ASSERT_TRUE(daemon.waitReady());
  std::vector<std::string> hostile = {"it's \"quoted\"",
                                      "back\\slash \\\\ \\n",
                                      "$1 $2 $$ ${HOME} `id`",
                                      "'); DROP TABLE jobd.job; --",
                                      "\"; DROP TABLE jobd.job; --",
                                      "tab\tnew\nline",
                                      "unicode \u00e9\u4e2d\U0001F600",
                                      "%s %n %x {} {0}"};
  int tried = 0;
  for (const std::string& s : hostile) {
    SCOPED_TRACE(s);
    nlohmann::json data = {{"s", s}};
    testing::ProcessResult enq =
        testing::runJobd({"--database", db.conninfo(), "enqueue", "echo", data.dump()});
    ASSERT_EQ(enq.exit_code, 0) << enq.err;
    std::string id = enq.out.substr(0, enq.out.find_first_of(" \n"));
    ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2"), "2")
        << daemon.log();
    testing::ProcessResult show =
        testing::runJobd({"--database", db.conninfo(), "show", id, "--json"});
    ASSERT_EQ(show.exit_code, 0) << show.err;
    nlohmann::json shown = nlohmann::json::parse(show.out);
    EXPECT_EQ(shown["json_data"]["s"].get<std::string>(), s);
    std::ifstream in(out);
    std::stringstream stdin_text;
    stdin_text << in.rdbuf();
    EXPECT_EQ(nlohmann::json::parse(stdin_text.str())["s"].get<std::string>(), s);
    ++tried;
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job"), std::to_string(hostile.size()));
  EXPECT_EQ(daemon.stop().exit_code, 0);
  report("hostile strings", {{"inputs", tried}});
}

}  // namespace
}  // namespace jobd::reliability
