#include "core/log_record.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace jobd
