// When a durable schedule ticks (issue 19): a schedule's spec and time zone,
// parsed once when the schedule is created or loaded, turned into instants,
// and the ticks that came due since the last one a job was made for.
//
// The contract (the documentation quotes it):
//
// - "every D" (D in parseDuration's syntax: 30s, 5m, 1h, 1d; whole seconds,
//   1s to 366d) ticks at every whole multiple of D since the Unix epoch
//   (1970-01-01T00:00:00Z), in real time, whatever the time zone: "every 1h"
//   ticks at the top of each UTC hour, "every 30s" at :00 and :30 of each
//   minute. So every daemon, and every restart, agrees on the ticks without
//   remembering when the schedule was made.
// - A cron expression (see cron.hpp) ticks at each wall-clock time in the
//   schedule's time zone that it matches, once:
//   * a wall-clock time that happens twice (clocks go back) ticks at its first
//     occurrence only;
//   * a wall-clock time that never happens (clocks go forward) ticks once, at
//     the moment the clocks jump; all such times in one gap, and a match at
//     the first wall-clock time after the gap, make that one tick.
//   In Europe/London "30 1 * * *" ticks at 01:00Z on the spring-forward day
//   and at 00:30Z (01:30 BST) on the fall-back day; "0 * * * *" ticks 24
//   times a day, less one in spring and with no repeat in autumn.
// - The time zone is an IANA name ("Europe/London"); empty means "UTC".
//
// Immutable after parse; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <date/date.h>

#include "core/cron.hpp"

namespace date {
class time_zone;
}  // namespace date

namespace jobd {

using SysSeconds = date::sys_seconds;

// What a schedule does about ticks that came due while no daemon could make
// them (downtime).
enum class CatchUp { kSkip, kLast, kAll };

// What a tick does while the schedule's previous job is still WAITING or
// RUNNING.
enum class Overlap { kAllow, kSkip, kQueue };

// "skip", "last", "all". Throws std::invalid_argument listing the choices.
CatchUp parseCatchUp(const std::string& text);
// "allow", "skip", "queue". Throws std::invalid_argument listing the choices.
Overlap parseOverlap(const std::string& text);

// The names the parsers take.
std::string_view catchUpName(CatchUp policy);
std::string_view overlapName(Overlap policy);

class ScheduleSpec {
 public:
  // spec: "every DURATION" or a cron expression. time_zone: an IANA name;
  // empty means "UTC". An interval ignores its zone, but the zone must still
  // exist, so that a typo is caught when the schedule is made. Throws
  // std::invalid_argument naming what is wrong ("unknown time zone
  // 'Mars/Base'", "every: expected a duration such as 30s, got 'x'", or
  // CronExpression::parse's message).
  static ScheduleSpec parse(const std::string& spec, const std::string& time_zone);

  // The first tick strictly after `after`, or nullopt when there is none
  // (a cron expression that never matches again, such as 30 February).
  // Throws std::runtime_error only if the zone's data is damaged.
  std::optional<SysSeconds> nextAfter(SysSeconds after) const;

  // The spec as written.
  const std::string& text() const { return text_; }
  // The zone's name as given, "UTC" when it was empty.
  const std::string& timeZone() const { return time_zone_; }
  bool isInterval() const { return !cron_.has_value(); }
  // The interval of an "every" spec; zero for a cron expression.
  std::chrono::seconds interval() const { return interval_; }

 private:
  ScheduleSpec() = default;

  std::optional<SysSeconds> nextInterval(SysSeconds after) const;
  // The first tick after `after`, searching on from the wall-clock time
  // `from`, which must be no later than the wall clock at `after`.
  std::optional<SysSeconds> nextCron(SysSeconds after, CivilTime from) const;

  std::string text_;
  std::string time_zone_;
  std::chrono::seconds interval_{0};
  std::optional<CronExpression> cron_;  // empty for an interval
  const date::time_zone* zone_ = nullptr;
};

// A tick that came due less than this long before now is on time: it is
// made whatever the catch-up policy.
inline constexpr std::chrono::seconds kOnTime{60};
// A cron schedule's ticks older than this before now are neither made nor
// counted as missed: the walk over them is bounded (a per-second
// expression: 604,800 steps).
inline constexpr std::chrono::hours kLookback{24 * 7};

// The ticks in (fired_through, now] and what to do with them.
struct DueTicks {
  std::vector<SysSeconds> fire;    // ascending; the ticks to make jobs for
  std::uint64_t missed = 0;        // due ticks not made, by the catch-up policy
  std::optional<SysSeconds> next;  // the first tick after now
};

// Every on-time tick (less than kOnTime old) is made. Of the older ones,
// which came due while no daemon could make them: kSkip makes none; kLast
// makes the newest, and only when no tick is on time; kAll makes the
// newest `limit` (a limit below 1 counts as 1). Every older tick not made
// counts in `missed`. Nothing is due when fired_through >= now.
// Arithmetic for intervals, whatever the gap; a cron expression walks its
// due ticks, at most kLookback of them.
DueTicks dueTicks(const ScheduleSpec& spec, SysSeconds fired_through, SysSeconds now,
                  CatchUp policy, int limit);

}  // namespace jobd
