// Cron expressions for durable schedules (issue 19): a schedule parses its
// expression once, when it is created or loaded, and asks for the next tick
// after the last one it made a job for. Vixie cron's syntax and day rule (as
// cronie keeps them), with robfig/cron's optional leading seconds field.
// Civil (wall-clock) time only: converting to and from a time zone, and what
// a daylight-saving gap or repeat does to a tick, is the caller's business.
// Immutable after parse; any thread.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

namespace jobd {

// A wall-clock time with no time zone. Members are in chronological order,
// so the defaulted comparisons order times.
struct CivilTime {
  int year = 1970;
  int month = 1;  // 1-12
  int day = 1;    // 1-31
  int hour = 0;
  int minute = 0;
  int second = 0;

  auto operator<=>(const CivilTime&) const = default;
};

// "2028-02-29 00:00:00".
std::string formatCivilTime(const CivilTime& t);

class CronExpression {
 public:
  // Five fields "minute hour day-of-month month day-of-week", six with a
  // leading seconds field, or a macro (@yearly, @annually, @monthly, @weekly,
  // @daily, @midnight, @hourly). Throws std::invalid_argument naming the field
  // and the offending text; callers add where the expression came from and
  // rethrow as their own kind of error (a UsageError, a ConfigError).
  static CronExpression parse(const std::string& text);

  // The first matching second strictly after `after`, or nullopt when none
  // exists (30 February). A field of `after` past its range (a leap second,
  // hour 24, 30 February) counts as the end of its unit.
  std::optional<CivilTime> nextAfter(const CivilTime& after) const;

  bool matches(const CivilTime& t) const;

  // The expression as written.
  const std::string& text() const { return text_; }
  // Whether it had the seconds field; without it, ticks fall on second 0.
  bool hasSeconds() const { return has_seconds_; }

 private:
  CronExpression() = default;

  bool dayMatches(int year, int month, int day) const;

  std::string text_;
  bool has_seconds_ = false;
  // Bit v is set when value v matches; day-of-week uses 0-6 (Sunday is 0).
  std::uint64_t seconds_ = 0;
  std::uint64_t minutes_ = 0;
  std::uint64_t hours_ = 0;
  std::uint64_t days_of_month_ = 0;
  std::uint64_t months_ = 0;
  std::uint64_t days_of_week_ = 0;
  // Vixie cron's DOM_STAR and DOW_STAR: the field's text starts with '*'.
  bool any_day_of_month_ = false;
  bool any_day_of_week_ = false;
};

}  // namespace jobd
