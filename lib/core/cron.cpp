#include "core/cron.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace jobd {
namespace {

constexpr std::string_view kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                            "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::string_view kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct Field {
  const char* name;
  int min;
  int max;   // the largest value one may write
  int last;  // where '*' and "a/n" stop: day-of-week's 7 only repeats Sunday
  std::span<const std::string_view> names;  // names[i] stands for min + i
};

constexpr Field kSecond{"second", 0, 59, 59, {}};
constexpr Field kMinute{"minute", 0, 59, 59, {}};
constexpr Field kHour{"hour", 0, 23, 23, {}};
constexpr Field kDayOfMonth{"day-of-month", 1, 31, 31, {}};
constexpr Field kMonth{"month", 1, 12, 12, kMonthNames};
constexpr Field kDayOfWeek{"day-of-week", 0, 7, 6, kDayNames};

struct Macro {
  std::string_view name;
  const char* fields;
};

constexpr Macro kMacros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

// The Gregorian calendar repeats every 400 years, so a search that finds
// nothing in 400 years never would: nullopt means "never", not "not soon".
// Satisfiable expressions need far less (29 February recurs within 8 years:
// 2096, 2104); an impossible "0 0 31 2,4,6,9,11 *" takes some 62,000 day steps.
constexpr int kSearchYears = 400;

// Errors quote the whole expression, so that a message read far from the
// schedule that holds it still shows what to fix.
[[noreturn]] void reject(const std::string& problem, const std::string& text) {
  throw std::invalid_argument("cron: " + problem + " in '" + text + "'");
}

bool isLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  auto upper = [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return upper(x) == upper(y); });
}

// The leading digits of rest as a number (capped: too large stays too large
// without overflowing), and how many there are.
std::size_t readDigits(std::string_view rest, int& value) {
  std::size_t n = 0;
  value = 0;
  for (; n < rest.size() && rest[n] >= '0' && rest[n] <= '9'; ++n) {
    value = std::min(value * 10 + (rest[n] - '0'), 100'000);
  }
  return n;
}

class FieldParser {
 public:
  FieldParser(const Field& field, const std::string& text) : field_(field), text_(text) {}

  // Bits for a comma-separated list of items.
  std::uint64_t parse(std::string_view list) const {
    std::uint64_t bits = 0;
    std::size_t comma = 0;
    do {
      comma = list.find(',');
      bits |= parseItem(list.substr(0, comma));
      list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    } while (comma != std::string_view::npos);
    return bits;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    reject(std::string(field_.name) + " field: " + problem, text_);
  }

  // "*", "a" or "a-b", each optionally followed by "/step"; "a/step" is a-last/step.
  std::uint64_t parseItem(std::string_view item) const {
    if (item.empty()) {
      fail("empty list item");
    }
    std::string_view rest = item;
    const auto consumed = [&] { return std::string(item.substr(0, item.size() - rest.size())); };
    int low = field_.min;
    int high = field_.last;
    bool single = false;
    if (rest.front() == '*') {
      rest.remove_prefix(1);
    } else {
      low = high = readValue(item, rest);
      single = true;
      if (!rest.empty() && rest.front() == '-') {
        rest.remove_prefix(1);
        const bool named = !rest.empty() && isLetter(rest.front());
        high = readValue(item, rest);
        // SUN is 0, but a range that ends on it ("FRI-SUN") means the 7 after SAT.
        if (named && &field_ == &kDayOfWeek && high == 0 && low > 0) {
          high = 7;
        }
        single = false;
        if (low > high) {
          fail("range " + consumed() + " is reversed");
        }
      }
    }
    int step = 1;
    if (!rest.empty() && rest.front() == '/') {
      rest.remove_prefix(1);
      const std::size_t n = readDigits(rest, step);
      if (n == 0) {
        fail(rest.empty() ? "the step after '/' is missing"
                          : "step '" + std::string(rest) + "' is not a number");
      }
      if (step < 1 || step > field_.max) {
        fail("step " + std::string(rest.substr(0, n)) + " is out of range 1-" +
             std::to_string(field_.max));
      }
      rest.remove_prefix(n);
      high = single ? std::max(low, field_.last) : high;
    }
    if (!rest.empty()) {
      fail("unexpected '" + std::string(rest) + "' after '" + consumed() + "'");
    }
    std::uint64_t bits = 0;
    for (int v = low; v <= high; v += step) {
      bits |= std::uint64_t{1} << (&field_ == &kDayOfWeek ? v % 7 : v);  // 7 is Sunday again
    }
    return bits;
  }

  // A number or one of the field's names, at the front of rest.
  int readValue(std::string_view item, std::string_view& rest) const {
    int value = 0;
    std::size_t n = readDigits(rest, value);
    if (n == 0 && !rest.empty() && isLetter(rest.front())) {
      while (n < rest.size() && isLetter(rest[n])) {
        ++n;
      }
      const std::string word(rest.substr(0, n));
      const auto found =
          std::find_if(field_.names.begin(), field_.names.end(),
                       [&](std::string_view name) { return equalsIgnoringCase(name, word); });
      if (found == field_.names.end()) {
        fail(field_.names.empty() ? "'" + word + "' is not a number"
                                  : "unknown name '" + word + "'");
      }
      value = field_.min + static_cast<int>(found - field_.names.begin());
    } else if (n == 0) {
      fail(rest.empty() ? "a value is missing after '" + std::string(item) + "'"
                        : "expected a value at '" + std::string(rest) + "'");
    } else if (value < field_.min || value > field_.max) {
      fail(std::string(rest.substr(0, n)) + " is out of range " + std::to_string(field_.min) + "-" +
           std::to_string(field_.max));
    }
    rest.remove_prefix(n);
    return value;
  }

  const Field& field_;
  const std::string& text_;
};

std::vector<std::string_view> splitFields(std::string_view text) {
  constexpr std::string_view kBlanks = " \t\r\n";
  std::vector<std::string_view> fields;
  std::size_t start = text.find_first_not_of(kBlanks);
  while (start != std::string_view::npos) {
    const std::size_t end = std::min(text.find_first_of(kBlanks, start), text.size());
    fields.push_back(text.substr(start, end - start));
    start = text.find_first_not_of(kBlanks, end);
  }
  return fields;
}

bool has(std::uint64_t bits, int value) {
  return value >= 0 && value < 64 && ((bits >> value) & 1U) != 0;
}

// The smallest value >= from in bits, or -1.
int firstFrom(std::uint64_t bits, int from) {
  from = std::max(from, 0);
  if (from >= 64) {
    return -1;
  }
  const std::uint64_t rest = (bits >> from) << from;
  return rest == 0 ? -1 : std::countr_zero(rest);
}

int daysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

// 0 for Sunday (Sakamoto's method), for years from 1.
int dayOfWeek(int year, int month, int day) {
  static constexpr int kOffsets[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
  year -= month < 3 ? 1 : 0;
  return (year + year / 4 - year / 100 + year / 400 + kOffsets[month - 1] + day) % 7;
}

}  // namespace

std::string formatCivilTime(const CivilTime& t) {
  char buffer[80];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02d %02d:%02d:%02d", t.year, t.month, t.day,
                t.hour, t.minute, t.second);
  return buffer;
}

CronExpression CronExpression::parse(const std::string& text) {
  std::vector<std::string_view> fields = splitFields(text);
  if (fields.size() == 1 && fields[0].front() == '@') {
    if (equalsIgnoringCase(fields[0], "@reboot")) {
      reject("@reboot is not a time, so it cannot be a schedule", text);
    }
    const auto* macro = std::find_if(std::begin(kMacros), std::end(kMacros), [&](const Macro& m) {
      return equalsIgnoringCase(m.name, fields[0]);
    });
    if (macro == std::end(kMacros)) {
      reject("unknown macro '" + std::string(fields[0]) + "'", text);
    }
    fields = splitFields(macro->fields);
  } else if (fields.size() != 5 && fields.size() != 6) {
    reject("expected 5 or 6 fields, got " + std::to_string(fields.size()), text);
  }

  CronExpression cron;
  cron.text_ = text;
  cron.has_seconds_ = fields.size() == 6;
  const std::size_t first = cron.has_seconds_ ? 1 : 0;
  cron.seconds_ = cron.has_seconds_ ? FieldParser(kSecond, text).parse(fields[0]) : 1;
  cron.minutes_ = FieldParser(kMinute, text).parse(fields[first]);
  cron.hours_ = FieldParser(kHour, text).parse(fields[first + 1]);
  cron.days_of_month_ = FieldParser(kDayOfMonth, text).parse(fields[first + 2]);
  cron.months_ = FieldParser(kMonth, text).parse(fields[first + 3]);
  cron.days_of_week_ = FieldParser(kDayOfWeek, text).parse(fields[first + 4]);
  // Vixie cron (and cronie) test the field's first character, not the set it
  // makes: "*/2" counts as a star, "1-31" does not.
  cron.any_day_of_month_ = fields[first + 2].front() == '*';
  cron.any_day_of_week_ = fields[first + 4].front() == '*';
  return cron;
}

bool CronExpression::dayMatches(int year, int month, int day) const {
  const bool by_month = has(days_of_month_, day);
  const bool by_week = has(days_of_week_, dayOfWeek(year, month, day));
  // Both restricted: either will do. Otherwise the star field holds every day
  // and the other one decides.
  return any_day_of_month_ || any_day_of_week_ ? by_month && by_week : by_month || by_week;
}

bool CronExpression::matches(const CivilTime& t) const {
  return has(months_, t.month) && t.day >= 1 && t.day <= daysInMonth(t.year, t.month) &&
         dayMatches(t.year, t.month, t.day) && has(hours_, t.hour) && has(minutes_, t.minute) &&
         has(seconds_, t.second);
}

// From the largest unit to the smallest: a unit with no match left moves to
// the start of the next value of the unit above and starts over, so a month,
// day, hour or minute that cannot match is skipped whole. A value past its
// range (second 60, hour 24, month 13) finds no match and so carries upward.
std::optional<CivilTime> CronExpression::nextAfter(const CivilTime& after) const {
  CivilTime t = after;
  t.second += 1;
  while (t.year <= after.year + kSearchYears) {
    const int month = firstFrom(months_, t.month);
    if (month < 0) {
      t = {t.year + 1, 1, 1, 0, 0, 0};
      continue;
    }
    if (month != t.month || t.day < 1) {
      t = {t.year, month, 1, 0, 0, 0};
    }
    if (t.day > daysInMonth(t.year, t.month)) {
      t = {t.year, t.month + 1, 1, 0, 0, 0};
      continue;
    }
    const int hour = dayMatches(t.year, t.month, t.day) ? firstFrom(hours_, t.hour) : -1;
    if (hour < 0) {
      t = {t.year, t.month, t.day + 1, 0, 0, 0};
      continue;
    }
    if (hour != t.hour) {
      t = {t.year, t.month, t.day, hour, 0, 0};
    }
    const int minute = firstFrom(minutes_, t.minute);
    if (minute < 0) {
      t = {t.year, t.month, t.day, t.hour + 1, 0, 0};
      continue;
    }
    if (minute != t.minute) {
      t = {t.year, t.month, t.day, t.hour, minute, 0};
    }
    const int second = firstFrom(seconds_, t.second);
    if (second < 0) {
      t = {t.year, t.month, t.day, t.hour, t.minute + 1, 0};
      continue;
    }
    t.second = second;
    return t;
  }
  return std::nullopt;
}

}  // namespace jobd
