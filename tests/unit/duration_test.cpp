#include <gtest/gtest.h>

#include "core/duration.hpp"

namespace jobd {
namespace {

using std::chrono::milliseconds;

// Every unit of SPEC §3, a bare number as seconds, and fractions.
TEST(DurationTest, ParsesEveryUnit) {
  EXPECT_EQ(parseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(parseDuration("5s"), milliseconds(5000));
  EXPECT_EQ(parseDuration("10"), milliseconds(10000));
  EXPECT_EQ(parseDuration("5m"), milliseconds(300000));
  EXPECT_EQ(parseDuration("2h"), milliseconds(7200000));
  EXPECT_EQ(parseDuration("30d"), milliseconds(30LL * 86400000));
  EXPECT_EQ(parseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parseDuration(" 0 "), milliseconds(0));
}

// Anything else is refused rather than guessed.
TEST(DurationTest, RefusesMalformedValues) {
  for (const char* bad :
       {"", "s", "-5s", "5 s", "5x", "5sec", "1e3", ".5s", "5.s", "inf", "99999999999d", "0x10"}) {
    EXPECT_FALSE(parseDuration(bad).has_value()) << bad;
  }
}

// Sizes are powers of 1024; a bare number is bytes.
TEST(DurationTest, ParsesSizes) {
  EXPECT_EQ(parseSize("512"), 512u);
  EXPECT_EQ(parseSize("64K"), 65536u);
  EXPECT_EQ(parseSize("1M"), 1048576u);
  EXPECT_EQ(parseSize("2G"), 2147483648u);
  for (const char* bad : {"", "M", "1MB", "1k", "-1", "1 M"}) {
    EXPECT_FALSE(parseSize(bad).has_value()) << bad;
  }
}

// Formatting picks the largest exact unit, so defaults print as written.
TEST(DurationTest, FormatsExactly) {
  EXPECT_EQ(formatDuration(milliseconds(30000)), "30s");
  EXPECT_EQ(formatDuration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(formatDuration(milliseconds(300000)), "5m");
  EXPECT_EQ(formatDuration(milliseconds(30LL * 86400000)), "30d");
  EXPECT_EQ(formatDuration(milliseconds(0)), "0s");
  EXPECT_EQ(formatSize(1048576), "1M");
  EXPECT_EQ(formatSize(1000), "1000");
  EXPECT_EQ(toSqlInterval(milliseconds(1500)), "1500000 microseconds");
}

}  // namespace
}  // namespace jobd
