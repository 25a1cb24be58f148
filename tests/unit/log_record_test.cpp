#include "core/log_record.hpp"

#include "core/log.hpp"

#include <gtest/gtest.h>

#include <map>

#include <nlohmann/json.hpp>

namespace jobd {
namespace {

// An event name and key=value words become fields; other words stay in msg.
TEST(LogRecordTest, EventAndFieldsAreSplitOut) {
  auto fields = logFields("T", "info", "JOB_FINISHED id=7 type=noop outcome=completed");
  std::vector<std::pair<std::string, std::string>> expected = {
      {"time", "T"}, {"level", "info"}, {"event", "JOB_FINISHED"},
      {"id", "7"},   {"type", "noop"},  {"outcome", "completed"}};
  EXPECT_EQ(fields, expected);
  auto plain = logFields("T", "warning", "Scheduling retry due to RetryError: later.");
  ASSERT_EQ(plain.size(), 3u);
  EXPECT_EQ(plain[2], (std::pair<std::string, std::string>{
                          "msg", "Scheduling retry due to RetryError: later."}));
}

// Keys that would overwrite time, level, event or msg stay in msg.
TEST(LogRecordTest, ReservedKeysStayInTheMessage) {
  auto fields = logFields("T", "info", "EVENT level=evil msg=x a=1");
  EXPECT_EQ(fields.back(), (std::pair<std::string, std::string>{"msg", "level=evil msg=x"}));
  EXPECT_EQ(fields[1].second, "info");
}

// keyvalue quotes a value with spaces, quotes or equals signs.
TEST(LogRecordTest, KeyValueQuotesWhatNeedsIt) {
  EXPECT_EQ(formatLogRecord(LogFormat::kKeyValue, "T", "error",
                            "DATABASE_DOWN host=db could not \"connect\""),
            "time=T level=error event=DATABASE_DOWN host=db msg=\"could not \\\"connect\\\"\"");
  EXPECT_EQ(formatLogRecord(LogFormat::kKeyValue, "T", "info", "EV empty="),
            "time=T level=info event=EV empty=\"\"");
}

// json is one object per line, even for bytes that are not UTF-8 and for
// quotes and newlines.
TEST(LogRecordTest, JsonIsOneValidObject) {
  std::string line =
      formatLogRecord(LogFormat::kJson, "T", "info", "JOB_FAILED id=1 value=\"x\"\n\xff\xfe tail");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  nlohmann::json record = nlohmann::json::parse(line);
  EXPECT_EQ(record["event"], "JOB_FAILED");
  EXPECT_EQ(record["id"], "1");
  EXPECT_TRUE(record.contains("msg"));
}

// The text format is the daemon's usual line.
TEST(LogRecordTest, TextIsUnchanged) {
  EXPECT_EQ(formatLogRecord(LogFormat::kText, "T", "INFO   ", "DAEMON_READY a=b"),
            "T INFO    DAEMON_READY a=b");
  EXPECT_EQ(logFormatFromName("keyvalue"), LogFormat::kKeyValue);
  EXPECT_EQ(logFormatFromName("json"), LogFormat::kJson);
}

// A job's own text, logged as an argument, is one value whatever it holds
// (issue 18, item 11): it adds no field, no event and no line, in any
// format. Before, the rendered message was parsed, so " oops=..." in a
// job's message became a field and a newline started a forged record.
TEST(LogRecordTest, AnArgumentsTextCannotForgeFieldsEventsOrLines) {
  const std::string forged = "boom oops=OOPS-forged\nJOB_FINISHED id=999 outcome=completed";
  std::string message = logs::format("JOB_FAILED id={} log={} after {}", 7, forged, "x=1");
  auto fields = logFields("T", "error", message);
  std::map<std::string, std::string> by_key;
  for (const auto& [key, value] : fields) {
    EXPECT_EQ(by_key.count(key), 0U) << key;
    by_key[key] = value;
  }
  EXPECT_EQ(by_key["event"], "JOB_FAILED");
  EXPECT_EQ(by_key["id"], "7");
  EXPECT_EQ(by_key["log"], "boom oops=OOPS-forged\\nJOB_FINISHED id=999 outcome=completed");
  EXPECT_EQ(by_key["msg"], "after x=1");
  EXPECT_EQ(by_key.count("oops"), 0U);
  EXPECT_EQ(by_key.count("outcome"), 0U);
  EXPECT_EQ(by_key.count("x"), 0U);

  for (LogFormat format : {LogFormat::kText, LogFormat::kKeyValue, LogFormat::kJson}) {
    std::string line = formatLogRecord(format, "T", "error", message);
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_EQ(line.find(logs::kArgStart), std::string::npos) << line;
    EXPECT_EQ(line.find(logs::kArgEnd), std::string::npos) << line;
  }
  // An argument cannot name the event either.
  auto event = logFields("T", "info", logs::format("{} id={}", "DAEMON_READY", 1));
  EXPECT_NE(event[2].first, "event");
  // ... unless the code names it: logs::Event, for one call that logs
  // several events (DatabaseThread::failed's CLAIM_FAILED and others).
  auto named = logFields(
      "T", "error",
      logs::format("{} error={} detail={}", logs::Event{"CLAIM_FAILED"}, "other", "boom"));
  ASSERT_GE(named.size(), 4U);
  EXPECT_EQ(named[2], (std::pair<std::string, std::string>{"event", "CLAIM_FAILED"}));
  EXPECT_EQ(named[3], (std::pair<std::string, std::string>{"error", "other"}));
  EXPECT_EQ(logs::unmarked(logs::format("{} x", logs::Event{"A_B\nC d=1"})), "A_BC1 x");
  // A format spec still applies to a marked argument.
  EXPECT_EQ(logs::unmarked(logs::format("took {:.1f} s", 1.25)), "took 1.2 s");
}

}  // namespace
}  // namespace jobd
