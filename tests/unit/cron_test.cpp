#include "core/cron.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

namespace jobd {
namespace {

// "2012-07-09 15:00" or "2012-07-09 15:00:05".
CivilTime at(const std::string& text) {
  return {std::stoi(text.substr(0, 4)),  std::stoi(text.substr(5, 2)),
          std::stoi(text.substr(8, 2)),  std::stoi(text.substr(11, 2)),
          std::stoi(text.substr(14, 2)), text.size() > 16 ? std::stoi(text.substr(17, 2)) : 0};
}

std::string describe(const std::optional<CivilTime>& t) {
  return t ? formatCivilTime(*t) : "none";
}

// The next tick as "YYYY-MM-DD HH:MM:SS", or "none".
std::string next(const std::string& spec, const std::string& after) {
  return describe(CronExpression::parse(spec).nextAfter(at(after)));
}

struct NextCase {
  const char* after;
  const char* spec;
  const char* expected;  // "" when there is no next tick
};

struct MatchCase {
  const char* time;
  const char* spec;
  bool expected;
};

struct BadCase {
  const char* spec;
  const char* message;  // a substring of what() is enough
};

// Each row's next tick, which must also be a match.
void expectNextTicks(std::span<const NextCase> table) {
  for (const NextCase& c : table) {
    const CronExpression cron = CronExpression::parse(c.spec);
    const std::optional<CivilTime> t = cron.nextAfter(at(c.after));
    EXPECT_EQ(describe(t), *c.expected == 0 ? "none" : formatCivilTime(at(c.expected)))
        << c.spec << " after " << c.after;
    EXPECT_TRUE(!t || cron.matches(*t)) << c.spec << " at " << describe(t);
  }
}

// robfig/cron v3, spec_test.go, TestNext: its six-field parser is ours with
// the seconds field. Its `?` means `*` and is written so here. Left out: the
// 37 rows with TZ=/CRON_TZ= or a UTC offset (time zones and daylight saving
// belong to the caller). One row differs, see below.
constexpr NextCase kRobfigNext[] = {
    // Simple cases
    {"2012-07-09 14:45", "0 0/15 * * * *", "2012-07-09 15:00"},
    {"2012-07-09 14:59", "0 0/15 * * * *", "2012-07-09 15:00"},
    {"2012-07-09 14:59:59", "0 0/15 * * * *", "2012-07-09 15:00"},
    // Wrap around hours
    {"2012-07-09 15:45", "0 20-35/15 * * * *", "2012-07-09 16:20"},
    // Wrap around days
    {"2012-07-09 23:46", "0 */15 * * * *", "2012-07-10 00:00"},
    {"2012-07-09 23:45", "0 20-35/15 * * * *", "2012-07-10 00:20"},
    {"2012-07-09 23:35:51", "15/35 20-35/15 * * * *", "2012-07-10 00:20:15"},
    {"2012-07-09 23:35:51", "15/35 20-35/15 1/2 * * *", "2012-07-10 01:20:15"},
    {"2012-07-09 23:35:51", "15/35 20-35/15 10-12 * * *", "2012-07-10 10:20:15"},
    {"2012-07-09 23:35:51", "15/35 20-35/15 1/2 */2 * *", "2012-07-11 01:20:15"},
    {"2012-07-09 23:35:51", "15/35 20-35/15 * 9-20 * *", "2012-07-10 00:20:15"},
    {"2012-07-09 23:35:51", "15/35 20-35/15 * 9-20 Jul *", "2012-07-10 00:20:15"},
    // Wrap around months
    {"2012-07-09 23:35", "0 0 0 9 Apr-Oct *", "2012-08-09 00:00"},
    // robfig/cron v3 says 2012-08-01 (a Wednesday): it treats only a bare `*`
    // as unrestricted, so "*/5 ... Mon" is "the 1st, 6th, ... OR a Monday".
    // Vixie cron and cronie test the first character, so "*/5" is a star and
    // the rule is AND: Monday the 6th, which robfig/cron's v1 table also gave.
    {"2012-07-09 23:35", "0 0 0 */5 Apr,Aug,Oct Mon", "2012-08-06 00:00"},
    {"2012-07-09 23:35", "0 0 0 */5 Oct Mon", "2012-10-01 00:00"},
    // Wrap around years
    {"2012-07-09 23:35", "0 0 0 * Feb Mon", "2013-02-04 00:00"},
    {"2012-07-09 23:35", "0 0 0 * Feb Mon/2", "2013-02-01 00:00"},
    // Wrap around minute, hour, day, month, and year
    {"2012-12-31 23:59:45", "0 * * * * *", "2013-01-01 00:00:00"},
    // Leap year
    {"2012-07-09 23:35", "0 0 0 29 Feb *", "2016-02-29 00:00"},
    // Unsatisfiable
    {"2012-07-09 23:35", "0 0 0 30 Feb *", ""},
    {"2012-07-09 23:35", "0 0 0 31 Apr *", ""},
};

// robfig/cron v3, spec_test.go, TestActivation (five fields), all 29 rows.
constexpr MatchCase kRobfigActivation[] = {
    // Every fifteen minutes.
    {"2012-07-09 15:00", "0/15 * * * *", true},
    {"2012-07-09 15:45", "0/15 * * * *", true},
    {"2012-07-09 15:40", "0/15 * * * *", false},
    // Every fifteen minutes, starting at 5 minutes.
    {"2012-07-09 15:05", "5/15 * * * *", true},
    {"2012-07-09 15:20", "5/15 * * * *", true},
    {"2012-07-09 15:50", "5/15 * * * *", true},
    // Named months
    {"2012-07-15 15:00", "0/15 * * Jul *", true},
    {"2012-07-15 15:00", "0/15 * * Jun *", false},
    // Everything set.
    {"2012-07-15 08:30", "30 08 * Jul Sun", true},
    {"2012-07-15 08:30", "30 08 15 Jul *", true},
    {"2012-07-16 08:30", "30 08 * Jul Sun", false},
    {"2012-07-16 08:30", "30 08 15 Jul *", false},
    // Predefined schedules
    {"2012-07-09 15:00", "@hourly", true},
    {"2012-07-09 15:04", "@hourly", false},
    {"2012-07-09 15:00", "@daily", false},
    {"2012-07-09 00:00", "@daily", true},
    {"2012-07-09 00:00", "@weekly", false},
    {"2012-07-08 00:00", "@weekly", true},
    {"2012-07-08 01:00", "@weekly", false},
    {"2012-07-08 00:00", "@monthly", false},
    {"2012-07-01 00:00", "@monthly", true},
    // If both day fields are restricted, then only one needs to match.
    {"2012-07-15 00:00", "* * 1,15 * Sun", true},
    {"2012-06-15 00:00", "* * 1,15 * Sun", true},
    {"2012-08-01 00:00", "* * 1,15 * Sun", true},
    // robfig/cron v3 (its issue #70) says true; for Vixie cron "*/10" is a
    // star, so the day must be the 1st, 11th, 21st or 31st AND a Sunday.
    {"2012-07-15 00:00", "* * */10 * Sun", false},
    // However, if one has a star, then both need to match.
    {"2012-07-15 00:00", "* * * * Mon", false},
    {"2012-07-09 00:00", "* * 1,15 * *", false},
    {"2012-07-15 00:00", "* * 1,15 * *", true},
    {"2012-07-15 00:00", "* * */2 * Sun", true},
};

// pallets-eco/croniter, src/croniter/tests/test_croniter.py: test_hour,
// test_day, test_weekday, test_month, test_sunday_to_thursday_with_alpha_conversion
// and test_dom_dow_vixie_cron_bug with implement_cron_bug=True (croniter's
// name for Vixie's rule, which is ours). Each get_next() is a row, after the
// row before. Left out: croniter's trailing seconds field and year field,
// L, W, #, hashed and random fields, get_prev, time zones, day_or=False.
constexpr NextCase kCroniterNext[] = {
    // test_hour
    {"2010-01-24 12:02", "0 */3 * * *", "2010-01-24 15:00"},
    {"2010-01-24 15:00", "0 */3 * * *", "2010-01-24 18:00"},
    {"2010-01-24 18:00", "0 */3 * * *", "2010-01-24 21:00"},
    {"2010-01-24 21:00", "0 */3 * * *", "2010-01-25 00:00"},
    // test_day, leap years included (2000 is one, as a multiple of 400)
    {"2010-02-24 12:09", "0 0 */3 * *", "2010-02-25 00:00"},
    {"2010-02-25 00:00", "0 0 */3 * *", "2010-02-28 00:00"},
    {"2010-02-28 00:00", "0 0 */3 * *", "2010-03-01 00:00"},
    {"1996-02-27 00:00", "0 0 * * *", "1996-02-28 00:00"},
    {"1996-02-28 00:00", "0 0 * * *", "1996-02-29 00:00"},
    {"2000-02-27 00:00", "0 0 * * *", "2000-02-28 00:00"},
    {"2000-02-28 00:00", "0 0 * * *", "2000-02-29 00:00"},
    // test_weekday: "1 * wed" is the 1st OR a Wednesday
    {"2010-02-25 00:00", "0 0 * * sat", "2010-02-27 00:00"},
    {"2010-02-27 00:00", "0 0 * * sat", "2010-03-06 00:00"},
    {"2010-01-25 00:00", "0 0 1 * wed", "2010-01-27 00:00"},
    {"2010-01-27 00:00", "0 0 1 * wed", "2010-02-01 00:00"},
    {"2010-02-01 00:00", "0 0 1 * wed", "2010-02-03 00:00"},
    // test_dom_dow_vixie_cron_bug: odd days AND Saturdays
    {"2023-05-02 00:00", "0 16 */2 * sat", "2023-05-13 16:00"},
    {"2023-05-13 16:00", "0 16 */2 * sat", "2023-05-27 16:00"},
    {"2023-05-27 16:00", "0 16 */2 * sat", "2023-06-03 16:00"},
    {"2023-06-03 16:00", "0 16 */2 * sat", "2023-06-17 16:00"},
    // test_month
    {"2010-01-25 00:00", "0 0 1 * *", "2010-02-01 00:00"},
    {"2010-02-01 00:00", "0 0 1 * *", "2010-03-01 00:00"},
    {"2010-11-01 00:00", "0 0 1 * *", "2010-12-01 00:00"},
    {"2010-12-01 00:00", "0 0 1 * *", "2011-01-01 00:00"},
    // test_sunday_to_thursday_with_alpha_conversion
    {"2010-08-25 15:56", "30 22 * * sun-thu", "2010-08-25 22:30"},
};

// Ours. 2025-06-01 is a Sunday.
constexpr NextCase kOwnNext[] = {
    // 29 February: the next leap year, and across 2100, which is not one.
    {"2025-03-01 00:00", "0 0 29 2 *", "2028-02-29 00:00"},
    {"2096-03-01 00:00", "0 0 29 2 *", "2104-02-29 00:00"},
    {"2012-04-01 00:00", "0 0 31 * *", "2012-05-31 00:00"},
    // Never.
    {"2025-03-01 00:00", "0 0 30 2 *", ""},
    {"2025-03-01 00:00", "0 0 31 2,4,6,9,11 *", ""},
    // Both day fields restricted: the 13th OR a Friday; the 1st OR a Monday.
    {"2025-06-01 00:00", "0 12 13 * FRI", "2025-06-06 12:00"},
    {"2025-06-10 00:00", "0 12 13 * FRI", "2025-06-13 12:00"},
    {"2025-06-14 00:00", "0 12 1 * MON", "2025-06-16 12:00"},
    {"2025-06-24 00:00", "0 12 1 * MON", "2025-06-30 12:00"},
    {"2025-06-30 12:00", "0 12 1 * MON", "2025-07-01 12:00"},
    // One is a star: only the other restricts; "*/10" counts as a star.
    {"2025-06-01 00:00", "0 12 * * FRI", "2025-06-06 12:00"},
    {"2025-06-01 00:00", "0 12 13 * *", "2025-06-13 12:00"},
    {"2025-06-01 00:00", "0 12 */10 * FRI", "2025-07-11 12:00"},
    // Sunday is 0, 7 and SUN; a range may end on 7 or on SUN.
    {"2025-06-01 00:00", "0 12 * * 7", "2025-06-01 12:00"},
    {"2025-06-01 12:00", "0 12 * * 0", "2025-06-08 12:00"},
    {"2025-06-02 00:00", "0 12 * * sun", "2025-06-08 12:00"},
    {"2025-06-02 00:00", "0 12 * * 5-7", "2025-06-06 12:00"},
    {"2025-06-07 12:00", "0 12 * * 5-7", "2025-06-08 12:00"},
    {"2025-06-08 12:00", "0 12 * * FRI-SUN", "2025-06-13 12:00"},
    {"2025-06-02 00:00", "0 12 * * SUN-SUN", "2025-06-08 12:00"},
    // Names in ranges and lists, in any case.
    {"2025-06-07 00:00", "30 9 * * MON-FRI", "2025-06-09 09:30"},
    {"2025-06-01 00:00", "0 0 1 jan,Jul *", "2025-07-01 00:00"},
    {"2025-08-01 00:00", "0 0 1 NOV-dec *", "2025-11-01 00:00"},
    // Macros, from a Monday afternoon.
    {"2012-07-09 15:04", "@yearly", "2013-01-01 00:00"},
    {"2012-07-09 15:04", "@annually", "2013-01-01 00:00"},
    {"2012-07-09 15:04", "@monthly", "2012-08-01 00:00"},
    {"2012-07-09 15:04", "@weekly", "2012-07-15 00:00"},
    {"2012-07-09 15:04", "@daily", "2012-07-10 00:00"},
    {"2012-07-09 15:04", "@midnight", "2012-07-10 00:00"},
    {"2012-07-09 15:04", "@hourly", "2012-07-09 16:00"},
    {"2012-07-09 15:04", "@Hourly", "2012-07-09 16:00"},
    // Seconds, and "strictly after".
    {"2025-06-01 00:00:00", "*/20 * * * * *", "2025-06-01 00:00:20"},
    {"2025-06-01 00:00:40", "*/20 * * * * *", "2025-06-01 00:01:00"},
    {"2025-06-01 12:00", "0 12 * * *", "2025-06-02 12:00"},
    {"2025-12-31 23:59:59", "* * * * *", "2026-01-01 00:00"},
};

// robfig/cron v3 spec_test.go TestErrors and TestSlash0NoHang, parser_test.go
// TestRange's errors (its bounds moved onto real fields) and
// TestParseScheduleErrors (not @every); croniter test_error and
// test_invalid_zerorepeat; then ours.
constexpr BadCase kBadExpressions[] = {
    {"xyz", "expected 5 or 6 fields, got 1"},
    {"60 0 * * *", "minute field: 60 is out of range 0-59"},
    {"0 60 * * *", "hour field: 60 is out of range 0-23"},
    {"0 0 * * XYZ", "day-of-week field: unknown name 'XYZ'"},
    {"15/0 * * * *", "step 0 is out of range 1-59"},
    {"5--5 * * * *", "expected a value at '-5'"},
    {"* * * jan-x *", "month field: unknown name 'x'"},
    {"* * 2-x * *", "day-of-month field: 'x' is not a number"},
    {"*/-12 * * * *", "step '-12' is not a number"},
    {"*//2 * * * *", "step '/2' is not a number"},
    {"* * 0 * *", "0 is out of range 1-31"},
    {"* * * 13 *", "13 is out of range 1-12"},
    {"5-3 * * * *", "range 5-3 is reversed"},
    {"*/0 * * * *", "step 0 is out of range 1-59"},
    {"* 5 j * * *", "hour field: 'j' is not a number"},
    {"@unrecognized", "unknown macro '@unrecognized'"},
    {"* * * *", "expected 5 or 6 fields, got 4"},
    {"", "expected 5 or 6 fields, got 0"},
    // croniter
    {"-90 * * * *", "expected a value at '-90'"},
    {"a * * * *", "minute field: 'a' is not a number"},
    {"* * * janu-jun *", "unknown name 'janu'"},
    {"1-1_0 * * * *", "unexpected '_0' after '1-1'"},
    {"0-10/error * * * *", "step 'error' is not a number"},
    {"0-10/ * * * *", "the step after '/' is missing"},
    {"0-1& * * * *", "unexpected '&' after '0-1'"},
    {"* * 5-100 * *", "100 is out of range 1-31"},
    {"5-5/0 * * * *", "step 0 is out of range 1-59"},
    {"59-0/0 * * * *", "range 59-0 is reversed"},
    {"* * 31-1/0 * *", "range 31-1 is reversed"},
    {"* * * * 6-0/0", "range 6-0 is reversed"},
    // ours
    {"61 * * * *", "cron: minute field: 61 is out of range 0-59 in '61 * * * *'"},
    {"* * * * * * *", "expected 5 or 6 fields, got 7"},
    {" \t ", "expected 5 or 6 fields, got 0"},
    {"60 * * * * *", "second field: 60 is out of range 0-59"},
    {"* 24 * * *", "hour field: 24 is out of range 0-23"},
    {"* * 32 * *", "day-of-month field: 32 is out of range 1-31"},
    {"* * * 0 *", "month field: 0 is out of range 1-12"},
    {"* * * * 8", "day-of-week field: 8 is out of range 0-7"},
    {"99999999999 * * * *", "99999999999 is out of range 0-59"},
    {"5-1 * * * *", "range 5-1 is reversed"},
    {"* * * * SAT-MON", "range SAT-MON is reversed"},
    {"*/60 * * * *", "step 60 is out of range 1-59"},
    {"* */24 * * *", "hour field: step 24 is out of range 1-23"},
    {"1, * * * *", "minute field: empty list item"},
    {",1 * * * *", "minute field: empty list item"},
    {"1,,2 * * * *", "minute field: empty list item"},
    {"5- * * * *", "a value is missing after '5-'"},
    {"1-2-3 * * * *", "unexpected '-3' after '1-2'"},
    {"*5 * * * *", "unexpected '5' after '*'"},
    {"JAN * * * *", "minute field: 'JAN' is not a number"},
    {"* * * JANUARY *", "unknown name 'JANUARY'"},
    {"* * * * MONDAY", "unknown name 'MONDAY'"},
    {"? * * * *", "expected a value at '?'"},
    {"* * L * *", "'L' is not a number"},
    {"* * 15W * *", "unexpected 'W' after '15'"},
    {"* * * * 1#2", "unexpected '#2' after '1'"},
    {"TZ=UTC 5 * * * *", "second field: 'TZ' is not a number"},
    {"@every 5m", "expected 5 or 6 fields, got 2"},
    {"@reboot", "@reboot is not a time"},
};

// robfig/cron's next-tick table, less its time-zone rows.
TEST(CronTest, NextFollowsRobfigCron) {
  expectNextTicks(kRobfigNext);
}

// robfig/cron's activation table: whether a time is a tick.
TEST(CronTest, MatchesFollowRobfigCron) {
  for (const MatchCase& c : kRobfigActivation) {
    EXPECT_EQ(CronExpression::parse(c.spec).matches(at(c.time)), c.expected)
        << c.spec << " at " << c.time;
  }
}

// croniter's sequences of next ticks.
TEST(CronTest, NextFollowsCroniter) {
  expectNextTicks(kCroniterNext);
}

// Leap days, impossible dates, the day-of-month/day-of-week rule, Sunday's
// spellings, names, macros, seconds, and "strictly after".
TEST(CronTest, NextHandlesCalendarEdges) {
  expectNextTicks(kOwnNext);
}

// robfig/cron parser_test.go TestRange, TestField and TestBits, as the
// minutes a minute field selects (robfig's own bounds are arbitrary).
TEST(CronTest, ParsesValuesRangesStepsAndLists) {
  constexpr auto bit = [](int v) { return std::uint64_t{1} << v; };
  const struct {
    const char* field;
    std::uint64_t minutes;
  } cases[] = {
      {"5", bit(5)},
      {"0", bit(0)},
      {"7", bit(7)},
      {"5-5", bit(5)},
      {"5-6", bit(5) | bit(6)},
      {"5-7", bit(5) | bit(6) | bit(7)},
      {"5-6/2", bit(5)},
      {"5-7/2", bit(5) | bit(7)},
      {"5-7/1", bit(5) | bit(6) | bit(7)},
      {"5,6", bit(5) | bit(6)},
      {"5,6,7", bit(5) | bit(6) | bit(7)},
      {"1,5-7/2,3", bit(1) | bit(5) | bit(7) | bit(3)},
      {"0-0", bit(0)},
      {"1-1", bit(1)},
      {"1-5/2", 0x2a},
      {"1-4/2", 0xa},
      {"*", 0xfffffffffffffff},
      {"55/2", bit(55) | bit(57) | bit(59)},
  };
  for (const auto& c : cases) {
    const CronExpression cron = CronExpression::parse(std::string(c.field) + " * * * *");
    std::uint64_t minutes = 0;
    for (int m = 0; m < 64; ++m) {
      minutes |= cron.matches({2012, 7, 9, 15, m, 0}) ? bit(m) : 0;
    }
    EXPECT_EQ(minutes, c.minutes) << c.field;
  }
}

// robfig/cron parser_test.go TestOptionalSecondSchedule: a sixth field is
// the leading seconds; without it ticks fall on second 0.
TEST(CronTest, SecondsAreOptional) {
  EXPECT_TRUE(CronExpression::parse("0 5 * * * *").hasSeconds());
  EXPECT_FALSE(CronExpression::parse("5 * * * *").hasSeconds());
  EXPECT_FALSE(CronExpression::parse("@hourly").hasSeconds());
  EXPECT_EQ(next("0 5 * * * *", "2012-07-09 15:00"), "2012-07-09 15:05:00");
  EXPECT_EQ(next("5 5 * * * *", "2012-07-09 15:00"), "2012-07-09 15:05:05");
  EXPECT_EQ(next("5 * * * *", "2012-07-09 15:00"), "2012-07-09 15:05:00");
  EXPECT_EQ(CronExpression::parse("  5 *\t* * *  ").text(), "  5 *\t* * *  ");
}

// matches() refuses times that are not on the calendar.
TEST(CronTest, MatchesOnlyRealTimes) {
  const CronExpression every = CronExpression::parse("* * * * * *");
  EXPECT_TRUE(every.matches({2024, 2, 29, 23, 59, 59}));
  EXPECT_FALSE(every.matches({2025, 2, 29, 0, 0, 0}));
  EXPECT_FALSE(every.matches({2025, 4, 31, 0, 0, 0}));
  EXPECT_FALSE(every.matches({2025, 13, 1, 0, 0, 0}));
  EXPECT_FALSE(every.matches({2025, 1, 1, 24, 0, 0}));
  EXPECT_FALSE(every.matches({2025, 1, 1, 0, 0, 60}));
}

// A field past its range (a leap second, hour 24, 30 February) counts as the
// end of its unit.
TEST(CronTest, NextTreatsOutOfRangeFieldsAsTheEndOfTheirUnit) {
  const CronExpression every = CronExpression::parse("* * * * * *");
  EXPECT_EQ(describe(every.nextAfter({2025, 12, 31, 23, 59, 60})), "2026-01-01 00:00:00");
  EXPECT_EQ(describe(every.nextAfter({2025, 6, 1, 24, 0, 0})), "2025-06-02 00:00:00");
  EXPECT_EQ(describe(every.nextAfter({2025, 2, 30, 0, 0, 0})), "2025-03-01 00:00:00");
}

// Every malformed expression is refused with a message that names the problem.
TEST(CronTest, RefusesMalformedExpressions) {
  for (const BadCase& c : kBadExpressions) {
    try {
      CronExpression::parse(c.spec);
      ADD_FAILURE() << "accepted '" << c.spec << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
          << "'" << c.spec << "': " << e.what();
    }
  }
}

// nextAfter agrees with a minute-by-minute walk over matches().
TEST(CronTest, NextAgreesWithAWalk) {
  const auto plusMinute = [](CivilTime t) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0;
    if (++t.minute < 60) {
      return t;
    }
    t.minute = 0;
    if (++t.hour < 24) {
      return t;
    }
    t.hour = 0;
    if (++t.day <= (t.month == 2 && leap ? 29 : kDays[t.month - 1])) {
      return t;
    }
    t.day = 1;
    if (++t.month <= 12) {
      return t;
    }
    return CivilTime{t.year + 1, 1, 1, 0, 0, 0};
  };
  for (const char* spec : {"*/7 */5 * * *", "0 0 */3 * *", "15 10 1,15 * MON", "0 12 */2 * SAT",
                           "30 2 31 * *", "0 0 * * 1-5", "59 23 28-31 * *", "0 0 29 2,3 *",
                           "*/15 9-17 * * MON-FRI", "0 0 1 */2 *", "5 4 * * 7"}) {
    const CronExpression cron = CronExpression::parse(spec);
    for (const char* start : {"2023-12-31 23:59", "2024-01-31 23:59", "2025-02-27 12:34"}) {
      CivilTime t = at(start);
      for (int minutes = 0; minutes < 62 * 24 * 60; ++minutes) {
        t = plusMinute(t);
        if (cron.matches(t)) {
          break;
        }
      }
      EXPECT_EQ(describe(cron.nextAfter(at(start))), formatCivilTime(t))
          << spec << " after " << start;
    }
  }
}

}  // namespace
}  // namespace jobd
