#include "core/schedule_spec.hpp"

#include <date/date.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace jobd {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

// "2026-03-29T01:00:00Z".
SysSeconds at(const std::string& text) {
  std::istringstream in(text);
  SysSeconds t;
  in >> date::parse("%FT%TZ", t);
  if (in.fail()) {
    throw std::invalid_argument("bad test instant '" + text + "'");
  }
  return t;
}

std::string iso(const std::optional<SysSeconds>& t) {
  return t ? date::format("%FT%TZ", *t) : "none";
}

std::vector<std::string> iso(const std::vector<SysSeconds>& ticks) {
  std::vector<std::string> out;
  for (SysSeconds t : ticks) {
    out.push_back(iso(t));
  }
  return out;
}

// The next `count` ticks after `after`, as ISO strings ("none" once they end).
std::vector<std::string> ticks(const std::string& spec, const std::string& zone,
                               const std::string& after, int count) {
  const ScheduleSpec schedule = ScheduleSpec::parse(spec, zone);
  std::vector<std::string> out;
  std::optional<SysSeconds> t = at(after);
  for (int i = 0; i < count && t; ++i) {
    t = schedule.nextAfter(*t);
    out.push_back(iso(t));
  }
  return out;
}

std::string next(const std::string& spec, const std::string& zone, const std::string& after) {
  return iso(ScheduleSpec::parse(spec, zone).nextAfter(at(after)));
}

// The what() of the std::invalid_argument that parse throws, or "" if none.
std::string parseError(const std::string& spec, const std::string& zone) {
  try {
    ScheduleSpec::parse(spec, zone);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

using Strings = std::vector<std::string>;

// --- intervals ---

TEST(ScheduleSpecInterval, TicksAtMultiplesSinceTheEpoch) {
  EXPECT_EQ(next("every 30s", "", "2026-03-29T12:00:10Z"), "2026-03-29T12:00:30Z");
  EXPECT_EQ(next("every 30s", "", "2026-03-29T12:00:30Z"), "2026-03-29T12:01:00Z");
  EXPECT_EQ(next("every 30s", "", "2026-03-29T12:00:29Z"), "2026-03-29T12:00:30Z");
  EXPECT_EQ(ticks("every 1h", "", "2026-03-29T12:34:56Z", 3),
            (Strings{"2026-03-29T13:00:00Z", "2026-03-29T14:00:00Z", "2026-03-29T15:00:00Z"}));
  EXPECT_EQ(next("every 5m", "", "2026-03-29T12:00:00Z"), "2026-03-29T12:05:00Z");
  EXPECT_EQ(next("every 1d", "", "2026-03-29T12:00:00Z"), "2026-03-30T00:00:00Z");
  // A bare number is seconds, and whole seconds written in ms are fine.
  EXPECT_EQ(next("every 90", "", "2026-03-29T12:00:00Z"), "2026-03-29T12:01:30Z");
  EXPECT_EQ(next("every 2000ms", "", "2026-03-29T12:00:01Z"), "2026-03-29T12:00:02Z");
  // 1970-01-01 was a Thursday, so weekly ticks fall on Thursdays at 00:00Z.
  EXPECT_EQ(next("every 7d", "", "2026-03-29T12:00:00Z"), "2026-04-02T00:00:00Z");
}

TEST(ScheduleSpecInterval, BeforeTheEpochStillFallsOnMultiples) {
  EXPECT_EQ(next("every 1h", "", "1969-12-31T22:30:00Z"), "1969-12-31T23:00:00Z");
  EXPECT_EQ(next("every 1h", "", "1969-12-31T23:00:00Z"), "1970-01-01T00:00:00Z");
}

TEST(ScheduleSpecInterval, IgnoresTheTimeZone) {
  // Real time: the spring-forward hour does not move or drop a tick.
  EXPECT_EQ(ticks("every 1h", "Europe/London", "2026-03-29T00:00:00Z", 3),
            (Strings{"2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z", "2026-03-29T03:00:00Z"}));
  EXPECT_EQ(next("every 1h", "Asia/Kolkata", "2026-03-29T12:10:00Z"), "2026-03-29T13:00:00Z");
}

TEST(ScheduleSpecInterval, Accessors) {
  const ScheduleSpec s = ScheduleSpec::parse(" every 5m ", "Europe/London");
  EXPECT_TRUE(s.isInterval());
  EXPECT_EQ(s.interval(), minutes{5});
  EXPECT_EQ(s.text(), " every 5m ");
  EXPECT_EQ(s.timeZone(), "Europe/London");
  EXPECT_TRUE(ScheduleSpec::parse("EVERY 1h", "").isInterval());
}

TEST(ScheduleSpecInterval, RejectsBadIntervals) {
  EXPECT_EQ(parseError("every 0s", ""), "every: the interval must be at least 1s, got '0s'");
  EXPECT_EQ(parseError("every 500ms", ""),
            "every: the interval must be whole seconds, got '500ms'");
  EXPECT_EQ(parseError("every 1.5s", ""), "every: the interval must be whole seconds, got '1.5s'");
  EXPECT_EQ(parseError("every x", ""), "every: expected a duration such as 30s, got 'x'");
  EXPECT_EQ(parseError("every", ""), "every: expected a duration such as 30s, got ''");
  EXPECT_EQ(parseError("every   ", ""), "every: expected a duration such as 30s, got ''");
  EXPECT_EQ(parseError("every -5s", ""), "every: expected a duration such as 30s, got '-5s'");
  EXPECT_EQ(parseError("every 5 m", ""), "every: expected a duration such as 30s, got '5 m'");
  EXPECT_EQ(parseError("every 367d", ""), "every: the interval must be at most 366d, got '367d'");
  EXPECT_EQ(parseError("every 366d", ""), "");
  // Not "every" at all: the cron parser says what is wrong.
  EXPECT_NE(parseError("every30s", "").find("cron:"), std::string::npos);
}

// --- cron in UTC and fixed-offset zones ---

TEST(ScheduleSpecCron, Utc) {
  EXPECT_EQ(ticks("*/5 * * * *", "UTC", "2026-03-29T12:03:00Z", 3),
            (Strings{"2026-03-29T12:05:00Z", "2026-03-29T12:10:00Z", "2026-03-29T12:15:00Z"}));
  EXPECT_EQ(ticks("*/15 * * * * *", "UTC", "2026-03-29T12:00:07Z", 3),
            (Strings{"2026-03-29T12:00:15Z", "2026-03-29T12:00:30Z", "2026-03-29T12:00:45Z"}));
  EXPECT_EQ(next("@daily", "UTC", "2026-12-31T23:59:59Z"), "2027-01-01T00:00:00Z");
  const ScheduleSpec s = ScheduleSpec::parse("*/5 * * * *", "UTC");
  EXPECT_FALSE(s.isInterval());
  EXPECT_EQ(s.interval(), seconds{0});
}

TEST(ScheduleSpecCron, EmptyZoneMeansUtc) {
  const ScheduleSpec s = ScheduleSpec::parse("0 9 * * *", "");
  EXPECT_EQ(s.timeZone(), "UTC");
  EXPECT_EQ(iso(s.nextAfter(at("2026-03-29T12:00:00Z"))), "2026-03-30T09:00:00Z");
}

TEST(ScheduleSpecCron, ZoneWithoutDaylightSaving) {
  // JST is UTC+9 all year: 09:00 in Tokyo is midnight UTC.
  EXPECT_EQ(ticks("0 9 * * *", "Asia/Tokyo", "2026-03-28T12:00:00Z", 2),
            (Strings{"2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"}));
}

TEST(ScheduleSpecCron, RejectsUnknownZonesAndBadExpressions) {
  EXPECT_EQ(parseError("0 9 * * *", "Mars/Base"), "unknown time zone 'Mars/Base'");
  EXPECT_EQ(parseError("every 5m", "Mars/Base"), "unknown time zone 'Mars/Base'");
  EXPECT_EQ(parseError("0 9 * *", "UTC"), "cron: expected 5 or 6 fields, got 4 in '0 9 * *'");
  EXPECT_EQ(parseError("", "UTC"), "cron: expected 5 or 6 fields, got 0 in ''");
}

TEST(ScheduleSpecCron, NeverMatchingAgain) {
  EXPECT_EQ(next("0 0 30 2 *", "UTC", "2026-03-29T12:00:00Z"), "none");
  EXPECT_EQ(next("0 0 30 2 *", "Europe/London", "2026-03-29T12:00:00Z"), "none");
}

// --- Europe/London: 2026-03-29 01:00Z GMT -> BST (01:00 local jumps to
// 02:00); 2026-10-25 01:00Z BST -> GMT (02:00 local falls back to 01:00). ---

TEST(ScheduleSpecLondon, SpringForwardSkippedTimeFiresAtTheJump) {
  // 01:30 does not exist on 29 March: it fires when the clocks jump.
  EXPECT_EQ(ticks("30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", 3),
            (Strings{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"}));
}

TEST(ScheduleSpecLondon, SpringForwardHourlyLosesOneTick) {
  // Local 01:00 (in the gap) and 02:00 BST are the same instant: one tick.
  EXPECT_EQ(ticks("0 * * * *", "Europe/London", "2026-03-29T00:00:00Z", 3),
            (Strings{"2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z", "2026-03-29T03:00:00Z"}));
}

TEST(ScheduleSpecLondon, SpringForwardEveryMinute) {
  EXPECT_EQ(ticks("* * * * *", "Europe/London", "2026-03-29T00:58:00Z", 3),
            (Strings{"2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:01:00Z"}));
  EXPECT_EQ(ticks("* * * * * *", "Europe/London", "2026-03-29T00:59:58Z", 3),
            (Strings{"2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z", "2026-03-29T01:00:01Z"}));
}

TEST(ScheduleSpecLondon, SpringForwardFromInsideTheGapsWallClock) {
  // Just after the jump the wall clock reads 02:00:30 BST: 01:30 is behind it.
  EXPECT_EQ(next("30 1 * * *", "Europe/London", "2026-03-29T01:00:30Z"), "2026-03-30T00:30:00Z");
  // At the jump itself the 01:30 tick has just fired.
  EXPECT_EQ(next("30 1 * * *", "Europe/London", "2026-03-29T01:00:00Z"), "2026-03-30T00:30:00Z");
  EXPECT_EQ(next("30 1 * * *", "Europe/London", "2026-03-29T00:59:59Z"), "2026-03-29T01:00:00Z");
}

TEST(ScheduleSpecLondon, FallBackRepeatedTimeFiresOnce) {
  // 01:30 happens at 00:30Z (BST) and 01:30Z (GMT): only the first fires.
  EXPECT_EQ(ticks("30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z", 3),
            (Strings{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"}));
  // From inside the repeat, either occurrence: tomorrow.
  EXPECT_EQ(next("30 1 * * *", "Europe/London", "2026-10-25T00:45:00Z"), "2026-10-26T01:30:00Z");
  EXPECT_EQ(next("30 1 * * *", "Europe/London", "2026-10-25T01:15:00Z"), "2026-10-26T01:30:00Z");
  EXPECT_EQ(next("30 1 * * *", "Europe/London", "2026-10-25T01:30:00Z"), "2026-10-26T01:30:00Z");
}

TEST(ScheduleSpecLondon, FallBackHourlyDoesNotRepeat) {
  EXPECT_EQ(ticks("0 * * * *", "Europe/London", "2026-10-24T23:00:00Z", 3),
            (Strings{"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}));
}

TEST(ScheduleSpecLondon, FallBackEveryMinuteWaitsOutTheRepeat) {
  EXPECT_EQ(ticks("* * * * *", "Europe/London", "2026-10-25T00:58:00Z", 2),
            (Strings{"2026-10-25T00:59:00Z", "2026-10-25T02:00:00Z"}));
  // During the second 01:xx the wall clock shows times that have fired.
  EXPECT_EQ(next("* * * * *", "Europe/London", "2026-10-25T01:00:00Z"), "2026-10-25T02:00:00Z");
  EXPECT_EQ(next("* * * * * *", "Europe/London", "2026-10-25T01:59:58Z"), "2026-10-25T02:00:00Z");
}

// --- America/New_York: 2026-03-08 07:00Z EST -> EDT (02:00 jumps to 03:00);
// 2026-11-01 06:00Z EDT -> EST (02:00 falls back to 01:00). ---

TEST(ScheduleSpecNewYork, SpringForward) {
  EXPECT_EQ(ticks("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 3),
            (Strings{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"}));
}

TEST(ScheduleSpecNewYork, FallBack) {
  EXPECT_EQ(ticks("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 3),
            (Strings{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"}));
}

// --- dueTicks ---

constexpr CatchUp kPolicies[] = {CatchUp::kSkip, CatchUp::kLast, CatchUp::kAll};

// first, first + step, ... up to last.
std::vector<SysSeconds> tickRange(SysSeconds first, SysSeconds last, seconds step = seconds{1}) {
  std::vector<SysSeconds> out;
  for (SysSeconds t = first; t <= last; t += step) {
    out.push_back(t);
  }
  return out;
}

TEST(DueTicks, OnTimeTicksFireUnderEveryPolicy) {
  // Every tick in (T, T+10s] is less than kOnTime old: none is late, so
  // neither the policy nor the limit holds any back.
  const ScheduleSpec s = ScheduleSpec::parse("every 1s", "");
  const SysSeconds t = at("2026-03-29T12:00:00Z");
  const Strings expected = iso(tickRange(t + seconds{1}, t + seconds{10}));
  for (CatchUp policy : kPolicies) {
    for (int limit : {100, 3, 0}) {
      SCOPED_TRACE(std::string(catchUpName(policy)) + " limit " + std::to_string(limit));
      const DueTicks due = dueTicks(s, t, t + seconds{10}, policy, limit);
      EXPECT_EQ(iso(due.fire), expected);
      EXPECT_EQ(due.missed, 0U);
      EXPECT_EQ(iso(due.next), iso(t + seconds{11}));
    }
  }
}

TEST(DueTicks, LateTicksFollowThePolicy) {
  // Ten minutes of a per-second interval: (now-600s, now-60s] are late (540
  // ticks), (now-60s, now] on time (60).
  const ScheduleSpec s = ScheduleSpec::parse("every 1s", "");
  const SysSeconds now = at("2026-03-29T12:00:00Z");
  const SysSeconds through = now - seconds{600};

  const DueTicks all = dueTicks(s, through, now, CatchUp::kAll, 1000);
  EXPECT_EQ(all.fire.size(), 600U);
  EXPECT_EQ(iso(all.fire), iso(tickRange(through + seconds{1}, now)));
  EXPECT_EQ(all.missed, 0U);
  EXPECT_EQ(iso(all.next), iso(now + seconds{1}));

  // The newest five late ticks, then every on-time one, ascending.
  const DueTicks five = dueTicks(s, through, now, CatchUp::kAll, 5);
  EXPECT_EQ(iso(five.fire), iso(tickRange(now - seconds{64}, now)));
  EXPECT_EQ(five.missed, 535U);
  EXPECT_EQ(iso(five.next), iso(now + seconds{1}));

  // A limit below 1 counts as 1: the newest late tick, now - 60s.
  for (int limit : {0, -3}) {
    SCOPED_TRACE(limit);
    const DueTicks one = dueTicks(s, through, now, CatchUp::kAll, limit);
    EXPECT_EQ(iso(one.fire), iso(tickRange(now - kOnTime, now)));
    EXPECT_EQ(one.missed, 539U);
  }

  // Some ticks are on time, so kLast makes no late one; kSkip never does.
  for (CatchUp policy : {CatchUp::kLast, CatchUp::kSkip}) {
    SCOPED_TRACE(catchUpName(policy));
    const DueTicks due = dueTicks(s, through, now, policy, 1000);
    EXPECT_EQ(iso(due.fire), iso(tickRange(now - seconds{59}, now)));
    EXPECT_EQ(due.missed, 540U);
    EXPECT_EQ(iso(due.next), iso(now + seconds{1}));
  }
}

TEST(DueTicks, OneTickLateOrOnTime) {
  // Fired through 11:30; the one due tick is 12:00.
  for (const char* spec : {"every 1h", "0 * * * *"}) {
    SCOPED_TRACE(spec);
    const ScheduleSpec s = ScheduleSpec::parse(spec, "Europe/London");
    const SysSeconds through = at("2026-03-29T11:30:00Z");
    const SysSeconds tick = at("2026-03-29T12:00:00Z");

    // Ten minutes old, and exactly kOnTime old: late.
    for (SysSeconds now : {at("2026-03-29T12:10:00Z"), tick + kOnTime}) {
      SCOPED_TRACE(iso(now));
      const DueTicks skip = dueTicks(s, through, now, CatchUp::kSkip, 5);
      EXPECT_TRUE(skip.fire.empty());
      EXPECT_EQ(skip.missed, 1U);
      EXPECT_EQ(iso(skip.next), "2026-03-29T13:00:00Z");
      const DueTicks last = dueTicks(s, through, now, CatchUp::kLast, 5);
      EXPECT_EQ(iso(last.fire), Strings{"2026-03-29T12:00:00Z"});
      EXPECT_EQ(last.missed, 0U);
      EXPECT_EQ(iso(last.next), "2026-03-29T13:00:00Z");
      const DueTicks all = dueTicks(s, through, now, CatchUp::kAll, 5);
      EXPECT_EQ(iso(all.fire), Strings{"2026-03-29T12:00:00Z"});
      EXPECT_EQ(all.missed, 0U);
      EXPECT_EQ(iso(all.next), "2026-03-29T13:00:00Z");
    }

    // 59 s old: on time, made whatever the policy.
    for (CatchUp policy : kPolicies) {
      SCOPED_TRACE(catchUpName(policy));
      const DueTicks due = dueTicks(s, through, at("2026-03-29T12:00:59Z"), policy, 5);
      EXPECT_EQ(iso(due.fire), Strings{"2026-03-29T12:00:00Z"});
      EXPECT_EQ(due.missed, 0U);
      EXPECT_EQ(iso(due.next), "2026-03-29T13:00:00Z");
    }
  }
}

TEST(DueTicks, LastMakesALateTickOnlyWhenNoneIsOnTime) {
  // Fired through 09:00; 10:00, 11:00 and 12:00 are due.
  for (const char* spec : {"every 1h", "0 * * * *"}) {
    SCOPED_TRACE(spec);
    const ScheduleSpec s = ScheduleSpec::parse(spec, "Europe/London");
    const SysSeconds through = at("2026-03-29T09:00:00Z");

    // All three late.
    const SysSeconds later = at("2026-03-29T12:10:00Z");
    const DueTicks last = dueTicks(s, through, later, CatchUp::kLast, 5);
    EXPECT_EQ(iso(last.fire), Strings{"2026-03-29T12:00:00Z"});
    EXPECT_EQ(last.missed, 2U);
    EXPECT_EQ(iso(last.next), "2026-03-29T13:00:00Z");
    const DueTicks skip = dueTicks(s, through, later, CatchUp::kSkip, 5);
    EXPECT_TRUE(skip.fire.empty());
    EXPECT_EQ(skip.missed, 3U);
    const DueTicks two = dueTicks(s, through, later, CatchUp::kAll, 2);
    EXPECT_EQ(iso(two.fire), (Strings{"2026-03-29T11:00:00Z", "2026-03-29T12:00:00Z"}));
    EXPECT_EQ(two.missed, 1U);

    // 12:00 on time: kLast and kSkip make it alone; kAll's limit counts
    // only the late ticks, which come first.
    const SysSeconds sooner = at("2026-03-29T12:00:30Z");
    for (CatchUp policy : {CatchUp::kLast, CatchUp::kSkip}) {
      SCOPED_TRACE(catchUpName(policy));
      const DueTicks due = dueTicks(s, through, sooner, policy, 5);
      EXPECT_EQ(iso(due.fire), Strings{"2026-03-29T12:00:00Z"});
      EXPECT_EQ(due.missed, 2U);
      EXPECT_EQ(iso(due.next), "2026-03-29T13:00:00Z");
    }
    const DueTicks one = dueTicks(s, through, sooner, CatchUp::kAll, 1);
    EXPECT_EQ(iso(one.fire), (Strings{"2026-03-29T11:00:00Z", "2026-03-29T12:00:00Z"}));
    EXPECT_EQ(one.missed, 1U);
    const DueTicks all = dueTicks(s, through, sooner, CatchUp::kAll, 5);
    EXPECT_EQ(iso(all.fire),
              (Strings{"2026-03-29T10:00:00Z", "2026-03-29T11:00:00Z", "2026-03-29T12:00:00Z"}));
    EXPECT_EQ(all.missed, 0U);
  }
}

TEST(DueTicks, NowBetweenTicks) {
  const ScheduleSpec s = ScheduleSpec::parse("every 1m", "");
  // 12:01 is late (90 s old), 12:02 on time (30 s).
  const DueTicks due =
      dueTicks(s, at("2026-03-29T12:00:00Z"), at("2026-03-29T12:02:30Z"), CatchUp::kAll, 10);
  EXPECT_EQ(iso(due.fire), (Strings{"2026-03-29T12:01:00Z", "2026-03-29T12:02:00Z"}));
  EXPECT_EQ(due.missed, 0U);
  EXPECT_EQ(iso(due.next), "2026-03-29T12:03:00Z");
  const DueTicks skip =
      dueTicks(s, at("2026-03-29T12:00:00Z"), at("2026-03-29T12:02:30Z"), CatchUp::kSkip, 10);
  EXPECT_EQ(iso(skip.fire), Strings{"2026-03-29T12:02:00Z"});
  EXPECT_EQ(skip.missed, 1U);
  // fired_through off the grid (a schedule whose interval changed).
  for (CatchUp policy : kPolicies) {
    SCOPED_TRACE(catchUpName(policy));
    const DueTicks off =
        dueTicks(s, at("2026-03-29T12:00:20Z"), at("2026-03-29T12:00:50Z"), policy, 10);
    EXPECT_TRUE(off.fire.empty());
    EXPECT_EQ(off.missed, 0U);
    EXPECT_EQ(iso(off.next), "2026-03-29T12:01:00Z");
  }
}

TEST(DueTicks, CronLooksBackAWeekAtMost) {
  // Thirty days since fired_through; only the ticks in (now - kLookback,
  // now] count: 2026-03-22T13:00Z to 2026-03-29T12:00Z, 168, all late.
  const ScheduleSpec s = ScheduleSpec::parse("0 * * * *", "UTC");
  const SysSeconds now = at("2026-03-29T12:10:00Z");
  const SysSeconds through = now - days{30};
  const DueTicks last = dueTicks(s, through, now, CatchUp::kLast, 1);
  EXPECT_EQ(iso(last.fire), Strings{"2026-03-29T12:00:00Z"});
  EXPECT_EQ(last.missed, 7U * 24 - 1);
  EXPECT_EQ(iso(last.next), "2026-03-29T13:00:00Z");
  const DueTicks skip = dueTicks(s, through, now, CatchUp::kSkip, 1);
  EXPECT_TRUE(skip.fire.empty());
  EXPECT_EQ(skip.missed, 7U * 24);
  const DueTicks all = dueTicks(s, through, now, CatchUp::kAll, 1000);
  ASSERT_EQ(all.fire.size(), 7U * 24);
  EXPECT_EQ(iso(all.fire.front()), "2026-03-22T13:00:00Z");
  EXPECT_EQ(iso(all.fire.back()), "2026-03-29T12:00:00Z");
  EXPECT_EQ(all.missed, 0U);

  // On the hour the tick exactly kLookback old is out, and now's is on time.
  const SysSeconds on_hour = at("2026-03-29T12:00:00Z");
  const DueTicks hour_all = dueTicks(s, on_hour - days{30}, on_hour, CatchUp::kAll, 1000);
  ASSERT_EQ(hour_all.fire.size(), 7U * 24);
  EXPECT_EQ(iso(hour_all.fire.front()), "2026-03-22T13:00:00Z");
  EXPECT_EQ(iso(hour_all.fire.back()), "2026-03-29T12:00:00Z");
  EXPECT_EQ(hour_all.missed, 0U);
  const DueTicks hour_skip = dueTicks(s, on_hour - days{30}, on_hour, CatchUp::kSkip, 1);
  EXPECT_EQ(iso(hour_skip.fire), Strings{"2026-03-29T12:00:00Z"});
  EXPECT_EQ(hour_skip.missed, 7U * 24 - 1);

  // An interval is not clamped: every tick of the thirty days counts.
  const ScheduleSpec hourly = ScheduleSpec::parse("every 1h", "UTC");
  const DueTicks interval = dueTicks(hourly, through, now, CatchUp::kSkip, 1);
  EXPECT_TRUE(interval.fire.empty());
  EXPECT_EQ(interval.missed, 30U * 24);
}

TEST(DueTicks, NothingDueWhenFiredThroughNow) {
  const ScheduleSpec s = ScheduleSpec::parse("every 1s", "");
  const ScheduleSpec cron = ScheduleSpec::parse("0 * * * *", "UTC");
  const SysSeconds t = at("2026-03-29T12:10:00Z");
  for (CatchUp policy : kPolicies) {
    SCOPED_TRACE(catchUpName(policy));
    const DueTicks same = dueTicks(s, t, t, policy, 10);
    EXPECT_TRUE(same.fire.empty());
    EXPECT_EQ(same.missed, 0U);
    EXPECT_EQ(iso(same.next), iso(t + seconds{1}));
    // A clock that went backwards: still nothing, and next is after
    // fired_through, the later of the two.
    const DueTicks ahead = dueTicks(s, t + seconds{30}, t, policy, 10);
    EXPECT_TRUE(ahead.fire.empty());
    EXPECT_EQ(ahead.missed, 0U);
    EXPECT_EQ(iso(ahead.next), iso(t + seconds{31}));

    const DueTicks cron_same = dueTicks(cron, t, t, policy, 10);
    EXPECT_TRUE(cron_same.fire.empty());
    EXPECT_EQ(cron_same.missed, 0U);
    EXPECT_EQ(iso(cron_same.next), "2026-03-29T13:00:00Z");
    const DueTicks cron_ahead = dueTicks(cron, at("2026-03-29T13:00:00Z"), t, policy, 10);
    EXPECT_TRUE(cron_ahead.fire.empty());
    EXPECT_EQ(cron_ahead.missed, 0U);
    EXPECT_EQ(iso(cron_ahead.next), "2026-03-29T14:00:00Z");
  }
}

TEST(DueTicks, NeverMatchingCron) {
  const ScheduleSpec s = ScheduleSpec::parse("0 0 30 2 *", "UTC");
  for (CatchUp policy : kPolicies) {
    SCOPED_TRACE(catchUpName(policy));
    const DueTicks due =
        dueTicks(s, at("2026-01-01T00:00:00Z"), at("2026-03-29T12:00:00Z"), policy, 10);
    EXPECT_TRUE(due.fire.empty());
    EXPECT_EQ(due.missed, 0U);
    EXPECT_EQ(due.next, std::nullopt);
  }
}

TEST(DueTicks, CronKeepsTheNewest) {
  // 12:05 to 12:25 are late, 12:30 on time; the limit takes the two newest
  // late ones.
  const ScheduleSpec s = ScheduleSpec::parse("*/5 * * * *", "UTC");
  const DueTicks due =
      dueTicks(s, at("2026-03-29T12:00:00Z"), at("2026-03-29T12:30:00Z"), CatchUp::kAll, 2);
  EXPECT_EQ(iso(due.fire),
            (Strings{"2026-03-29T12:20:00Z", "2026-03-29T12:25:00Z", "2026-03-29T12:30:00Z"}));
  EXPECT_EQ(due.missed, 3U);
  EXPECT_EQ(iso(due.next), "2026-03-29T12:35:00Z");
}

TEST(DueTicks, CronAcrossSpringForward) {
  // Local 00:00 GMT, 01:00 and 02:00 (both the jump), 03:00 and 04:00 BST.
  const ScheduleSpec s = ScheduleSpec::parse("0 * * * *", "Europe/London");
  const SysSeconds through = at("2026-03-28T23:00:00Z");
  const SysSeconds now = at("2026-03-29T03:00:00Z");
  const DueTicks due = dueTicks(s, through, now, CatchUp::kAll, 100);
  EXPECT_EQ(iso(due.fire), (Strings{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z",
                                    "2026-03-29T02:00:00Z", "2026-03-29T03:00:00Z"}));
  EXPECT_EQ(due.missed, 0U);
  EXPECT_EQ(iso(due.next), "2026-03-29T04:00:00Z");
  // 03:00Z is on time; the three before it are late.
  const DueTicks skip = dueTicks(s, through, now, CatchUp::kSkip, 100);
  EXPECT_EQ(iso(skip.fire), Strings{"2026-03-29T03:00:00Z"});
  EXPECT_EQ(skip.missed, 3U);
  const DueTicks last = dueTicks(s, through, now - seconds{1}, CatchUp::kLast, 100);
  EXPECT_EQ(iso(last.fire), Strings{"2026-03-29T02:00:00Z"});
  EXPECT_EQ(last.missed, 2U);
  EXPECT_EQ(iso(last.next), "2026-03-29T03:00:00Z");
}

TEST(DueTicks, LongIntervalGapsAreArithmetic) {
  // Ten years of a per-second interval: 3653 days (2016, 2020 and 2024 are
  // leap); the last 60 ticks are on time.
  const ScheduleSpec s = ScheduleSpec::parse("every 1s", "");
  const SysSeconds from = date::sys_days{date::year{2016} / 1 / 1};
  const SysSeconds now = date::sys_days{date::year{2026} / 1 / 1};
  const std::uint64_t count = 3653ULL * 86400;
  const DueTicks last = dueTicks(s, from, now, CatchUp::kLast, 1);
  EXPECT_EQ(iso(last.fire), iso(tickRange(now - seconds{59}, now)));
  EXPECT_EQ(last.missed, count - 60);
  EXPECT_EQ(iso(last.next), iso(now + seconds{1}));
  const DueTicks all = dueTicks(s, from, now, CatchUp::kAll, 1000);
  ASSERT_EQ(all.fire.size(), 1060U);
  EXPECT_EQ(iso(all.fire), iso(tickRange(now - seconds{1059}, now)));
  EXPECT_EQ(all.missed, count - 60 - 1000);
}

// Two days (172,800 steps) rather than the whole lookback, to keep the
// suite quick in unoptimised and sanitiser builds.
TEST(DueTicks, PerSecondCronWalksEveryDueTick) {
  const ScheduleSpec s = ScheduleSpec::parse("* * * * * *", "Europe/London");
  const SysSeconds from = at("2026-03-28T12:00:00Z");
  const SysSeconds now = from + days{2};
  // The spring-forward gap has no seconds of its own: still one tick a
  // second. The newest five late ones, then the 60 on time.
  const DueTicks due = dueTicks(s, from, now, CatchUp::kAll, 5);
  EXPECT_EQ(iso(due.fire), iso(tickRange(now - seconds{64}, now)));
  EXPECT_EQ(due.missed, 2ULL * 86400 - 65);
  EXPECT_EQ(iso(due.next), iso(now + seconds{1}));
}

// --- policies ---

TEST(SchedulePolicies, CatchUpRoundTrips) {
  for (CatchUp policy : {CatchUp::kSkip, CatchUp::kLast, CatchUp::kAll}) {
    EXPECT_EQ(parseCatchUp(std::string(catchUpName(policy))), policy);
  }
  EXPECT_EQ(catchUpName(CatchUp::kLast), "last");
  EXPECT_EQ(parseCatchUp("all"), CatchUp::kAll);
  try {
    parseCatchUp("newest");
    ADD_FAILURE() << "parseCatchUp accepted 'newest'";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "catch-up: expected skip, last or all, got 'newest'");
  }
  EXPECT_THROW(parseCatchUp(""), std::invalid_argument);
  EXPECT_THROW(parseCatchUp("Skip"), std::invalid_argument);
}

TEST(SchedulePolicies, OverlapRoundTrips) {
  for (Overlap policy : {Overlap::kAllow, Overlap::kSkip, Overlap::kQueue}) {
    EXPECT_EQ(parseOverlap(std::string(overlapName(policy))), policy);
  }
  EXPECT_EQ(overlapName(Overlap::kQueue), "queue");
  try {
    parseOverlap("wait");
    ADD_FAILURE() << "parseOverlap accepted 'wait'";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "overlap: expected allow, skip or queue, got 'wait'");
  }
  EXPECT_THROW(parseOverlap(""), std::invalid_argument);
}

}  // namespace
}  // namespace jobd
