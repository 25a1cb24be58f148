// Bad inputs (RELIABILITY.md, scenario 7): payloads from 64 KiB to 100 MiB
// against the default max_payload (1M), generated malformed payloads for
// every handler that validates its arguments, and strings that break naive
// quoting, round-tripped through enqueue, `show --json` and exec.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
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

// One generated malformed payload of `category` for `handler`: a field
// of the wrong type, a required field missing, deep nesting, a huge or
// negative number, or not an object at all. None is valid by accident:
// the right types are never chosen.
std::string malformed(const std::string& handler, const std::string& category, std::mt19937_64& r) {
  // Each handler's fields and a value of the wrong type for each.
  static const std::map<std::string, std::vector<std::string>> kFields = {
      {"email", {"to", "cc", "subject", "body", "headers"}},
      {"fail", {"error", "message"}},
      {"merge_proposal_diff", {"merge_proposal", "repository", "source", "target"}},
      {"person_merge", {"from", "to"}},
      {"sleep", {"ms", "ignore_cancel"}},
  };
  static const std::vector<std::string> kWrong = {
      "null", "true", "[]", "{}", "[[1]]", "{\"a\": [null]}", "-0.0"};
  const std::vector<std::string>& fields = kFields.at(handler);
  const std::string& field = fields[r() % fields.size()];
  if (category == "wrong type") {
    return "{\"" + field + "\": " + kWrong[r() % kWrong.size()] + "}";
  }
  if (category == "missing field") {
    // Every field but one, each of the wrong type, or none at all.
    std::string out = "{";
    for (const std::string& f : fields) {
      if (f != field && r() % 2 == 0) {
        out += std::string(out.size() > 1 ? ", " : "") + "\"" + f + "\": null";
      }
    }
    return out + "}";
  }
  if (category == "deep nesting") {
    int depth = 100 + static_cast<int>(r() % 4000);
    return "{\"" + field + "\": " + std::string(depth, '[') + std::string(depth, ']') + "}";
  }
  if (category == "huge number") {
    static const std::vector<std::string> kHuge = {"1e308",
                                                   "-1e308",
                                                   "123456789012345678901234567890",
                                                   "-9223372036854775809",
                                                   "9223372036854775808",
                                                   "1.5",
                                                   "-1",
                                                   "4.9e-324"};
    return "{\"" + field + "\": " + kHuge[r() % kHuge.size()] +
           ", \"ms\": " + kHuge[r() % kHuge.size()] + "}";
  }
  static const std::vector<std::string> kNotObject = {"[]", "[{}]", "\"text\"",
                                                      "42", "null", "false"};
  return kNotObject[r() % kNotObject.size()];
}

// Generated malformed payloads (profile().malformed in all) for every
// handler that validates its json_data: each ends FAILED with a user error
// that names the problem (SPEC §5: no OOPS, no crash), and the daemon
// keeps running. Handlers that take any JSON (noop, exec, sql) are covered
// by the fuzzers.
TEST(ReliabilityInputs, GeneratedMalformedPayloads) {
  TestDatabase db;
  // fail runs in a process runner, in case a payload were valid after all.
  // Leases of 2 s: the user errors come faster than their outcomes are
  // written, and a job waiting in that backlog keeps its lease (it was
  // rescued as LeaseExpired before, with the 30 s default in the full
  // profile).
  Daemon daemon(db,
                "[jobd]\nworkers: 16\npoll_interval: 1s\n[mail]\nfrom_address: "
                "jobd@example.com\nsmtp_url: smtp://127.0.0.1:9\n"
                "[email]\nconcurrency: 4\nlease_duration: 2s\n"
                "[fail]\nrunner: process\nconcurrency: 4\nlease_duration: 2s\n"
                "[merge_proposal_diff]\nconcurrency: 4\nlease_duration: 2s\nrepository_root: /tmp\n"
                "[person_merge]\nconcurrency: 4\nlease_duration: 2s\n"
                "[sleep]\nconcurrency: 4\nlease_duration: 2s\n");
  ASSERT_TRUE(daemon.waitReady());
  std::mt19937_64 r = rng("malformed");
  const std::vector<std::string> handlers = {"email", "fail", "merge_proposal_diff", "person_merge",
                                             "sleep"};
  const std::vector<std::string> categories = {"wrong type", "missing field", "deep nesting",
                                               "huge number", "not an object"};
  std::map<std::string, int> tried;
  auto conn = db.connect();
  for (int done = 0; done < profile().malformed;) {
    pqxx::work txn(*conn);
    for (int i = 0; i < 200 && done < profile().malformed; ++i, ++done) {
      const std::string& handler = handlers[r() % handlers.size()];
      const std::string& category = categories[r() % categories.size()];
      ++tried[category];
      txn.exec_params("SELECT jobd.enqueue($1, $2::jsonb, requester => $3)", handler,
                      malformed(handler, category, r), category);
    }
    txn.commit();
  }
  std::string finished =
      waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status IN (2, 3)",
                   std::to_string(profile().malformed), std::chrono::seconds(600));
  EXPECT_EQ(finished, std::to_string(profile().malformed));
  // Every one refused as a user error with a message, none completed, no OOPS.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job j JOIN jobd.job_attempt a ON a.job_id = j.id "
                      "WHERE j.status = 3 AND a.outcome = 'user_error' AND a.error_message <> ''"),
            std::to_string(profile().malformed))
      << db.scalar(
             "SELECT string_agg(DISTINCT j.job_type || ' ' || j.requester || ': ' || "
             "coalesce(a.outcome, 'none') || ' ' || coalesce(a.error_message, ''), E'\\n') "
             "FROM jobd.job j LEFT JOIN jobd.job_attempt a ON a.job_id = j.id "
             "WHERE a.outcome IS DISTINCT FROM 'user_error'");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops"), "0");
  testing::ProcessResult stopped = daemon.stop();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  if (HasFailure()) {
    // Its warnings and errors say why (the JOB_FINISHED lines would bury them).
    std::istringstream lines(stopped.err);
    for (std::string line; std::getline(lines, line);) {
      if (line.find(" INFO ") == std::string::npos) {
        std::cerr << line << "\n";
      }
    }
  }
  nlohmann::json figures;
  figures["tried"] = profile().malformed;
  figures["by_category"] = tried;
  figures["user_errors"] =
      std::stoll(db.scalar("SELECT count(*) FROM jobd.job_attempt WHERE outcome = 'user_error'"));
  figures["crashes"] = stopped.exit_code == 0 ? 0 : 1;
  report("malformed payloads", figures);
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
