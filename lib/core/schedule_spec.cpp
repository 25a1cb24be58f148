#include "core/schedule_spec.hpp"

#include <algorithm>
#include <deque>
#include <limits>
#include <stdexcept>

#include <date/tz.h>

#include "core/duration.hpp"

namespace jobd {
namespace {

using std::chrono::seconds;

constexpr seconds kMaxInterval = std::chrono::days{366};

// With real time zone data nextCron returns within two candidates (one that
// falls in a repeat or a gap, then one past it); the bound only stops a loop
// that corrupt data could otherwise make very long.
constexpr int kMaxCandidates = 1000;

std::string_view trim(std::string_view s) {
  constexpr std::string_view kBlanks = " \t\r\n";
  const std::size_t start = s.find_first_not_of(kBlanks);
  if (start == std::string_view::npos) {
    return {};
  }
  return s.substr(start, s.find_last_not_of(kBlanks) - start + 1);
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

// "every 30s" -> "30s"; nullopt when spec is not an "every" spec at all, so
// that it goes to the cron parser and gets its messages.
std::optional<std::string_view> everyArgument(std::string_view spec) {
  constexpr std::string_view kEvery = "every";
  spec = trim(spec);
  if (spec.size() < kEvery.size() || !equalsIgnoringCase(spec.substr(0, kEvery.size()), kEvery)) {
    return std::nullopt;
  }
  const std::string_view rest = spec.substr(kEvery.size());
  if (!rest.empty() && rest.front() != ' ' && rest.front() != '\t') {
    return std::nullopt;
  }
  return trim(rest);
}

seconds parseInterval(std::string_view argument) {
  const std::string quoted = "'" + std::string(argument) + "'";
  const std::optional<Duration> d = argument.empty() ? std::nullopt : parseDuration(argument);
  if (!d) {
    throw std::invalid_argument("every: expected a duration such as 30s, got " + quoted);
  }
  // Ticks are whole seconds (SysSeconds), so a fraction would drift.
  if (d->count() % 1000 != 0) {
    throw std::invalid_argument("every: the interval must be whole seconds, got " + quoted);
  }
  const seconds interval = std::chrono::duration_cast<seconds>(*d);
  if (interval < seconds{1}) {
    throw std::invalid_argument("every: the interval must be at least 1s, got " + quoted);
  }
  if (interval > kMaxInterval) {
    throw std::invalid_argument("every: the interval must be at most 366d, got " + quoted);
  }
  return interval;
}

// t mod d in [0, d), before the epoch too (where % would be negative).
std::int64_t floorMod(std::int64_t t, std::int64_t d) {
  const std::int64_t r = t % d;
  return r < 0 ? r + d : r;
}

CivilTime toCivil(date::local_seconds t) {
  const date::local_days day = date::floor<date::days>(t);
  const date::year_month_day ymd{day};
  const date::hh_mm_ss<seconds> time{t - day};
  return {static_cast<int>(ymd.year()),
          static_cast<int>(static_cast<unsigned>(ymd.month())),
          static_cast<int>(static_cast<unsigned>(ymd.day())),
          static_cast<int>(time.hours().count()),
          static_cast<int>(time.minutes().count()),
          static_cast<int>(time.seconds().count())};
}

// CronExpression::nextAfter only returns real dates and times of day.
date::local_seconds toLocal(const CivilTime& c) {
  return date::local_days{date::year{c.year} / c.month / c.day} + std::chrono::hours{c.hour} +
         std::chrono::minutes{c.minute} + seconds{c.second};
}

date::local_seconds asLocal(SysSeconds t) {
  return date::local_seconds{t.time_since_epoch()};
}

SysSeconds asSys(date::local_seconds t) {
  return SysSeconds{t.time_since_epoch()};
}

}  // namespace

CatchUp parseCatchUp(const std::string& text) {
  for (CatchUp policy : {CatchUp::kSkip, CatchUp::kLast, CatchUp::kAll}) {
    if (text == catchUpName(policy)) {
      return policy;
    }
  }
  throw std::invalid_argument("catch-up: expected skip, last or all, got '" + text + "'");
}

Overlap parseOverlap(const std::string& text) {
  for (Overlap policy : {Overlap::kAllow, Overlap::kSkip, Overlap::kQueue}) {
    if (text == overlapName(policy)) {
      return policy;
    }
  }
  throw std::invalid_argument("overlap: expected allow, skip or queue, got '" + text + "'");
}

std::string_view catchUpName(CatchUp policy) {
  switch (policy) {
    case CatchUp::kSkip:
      return "skip";
    case CatchUp::kLast:
      return "last";
    case CatchUp::kAll:
      return "all";
  }
  return "?";
}

std::string_view overlapName(Overlap policy) {
  switch (policy) {
    case Overlap::kAllow:
      return "allow";
    case Overlap::kSkip:
      return "skip";
    case Overlap::kQueue:
      return "queue";
  }
  return "?";
}

ScheduleSpec ScheduleSpec::parse(const std::string& spec, const std::string& time_zone) {
  ScheduleSpec s;
  s.text_ = spec;
  s.time_zone_ = time_zone.empty() ? "UTC" : time_zone;
  try {
    s.zone_ = date::locate_zone(s.time_zone_);
  } catch (const std::runtime_error&) {
    throw std::invalid_argument("unknown time zone '" + s.time_zone_ + "'");
  }
  if (const std::optional<std::string_view> argument = everyArgument(spec)) {
    s.interval_ = parseInterval(*argument);
  } else {
    s.cron_ = CronExpression::parse(spec);
  }
  return s;
}

std::optional<SysSeconds> ScheduleSpec::nextAfter(SysSeconds after) const {
  if (isInterval()) {
    return nextInterval(after);
  }
  return nextCron(after, toCivil(zone_->to_local(after)));
}

std::optional<SysSeconds> ScheduleSpec::nextInterval(SysSeconds after) const {
  const std::int64_t d = interval_.count();
  const std::int64_t t = after.time_since_epoch().count();
  const std::int64_t step = d - floorMod(t, d);
  if (t > std::numeric_limits<std::int64_t>::max() - step) {
    return std::nullopt;
  }
  return SysSeconds{seconds{t + step}};
}

// Wall-clock times map to instants monotonically (first occurrence of a
// repeat, the jump for a gap), and every match at or before `from` maps to
// at or before `after`, so the first candidate that maps past `after` is the
// next tick. A candidate that does not can only be one whose first
// occurrence is already past (`after` lies in the second) or one in a gap
// whose jump is not later than `after`; everything else in that repeat or
// gap maps the same way, so the search resumes past it.
std::optional<SysSeconds> ScheduleSpec::nextCron(SysSeconds after, CivilTime from) const {
  for (int i = 0; i < kMaxCandidates; ++i) {
    const std::optional<CivilTime> candidate = cron_->nextAfter(from);
    if (!candidate) {
      return std::nullopt;
    }
    const date::local_seconds local = toLocal(*candidate);
    const date::local_info info = zone_->get_info(local);
    SysSeconds instant;
    date::local_seconds resume = local;
    switch (info.result) {
      case date::local_info::unique:
        instant = asSys(local) - info.first.offset;
        break;
      case date::local_info::ambiguous:
        instant = asSys(local) - info.first.offset;
        // The repeat ends when the wall clock, on the earlier offset, reaches
        // the transition.
        resume = asLocal(info.first.end + info.first.offset) - seconds{1};
        break;
      case date::local_info::nonexistent:
        instant = info.second.begin;
        resume = asLocal(info.second.begin + info.second.offset) - seconds{1};
        break;
    }
    if (instant > after) {
      return instant;
    }
    from = toCivil(std::max(local, resume));
  }
  throw std::runtime_error("schedule '" + text_ + "': no tick found after " +
                           date::format("%FT%TZ", after) + " in time zone '" + time_zone_ +
                           "'; is its time zone data damaged?");
}

namespace {

// The ticks in (after, until]: how many, and the newest `keep` of them.
struct Span {
  std::uint64_t count = 0;
  std::deque<SysSeconds> newest;  // ascending
};

Span ticksIn(const ScheduleSpec& spec, SysSeconds after, SysSeconds until, std::size_t keep) {
  Span span;
  if (until <= after) {
    return span;
  }
  std::optional<SysSeconds> tick = spec.nextAfter(after);
  if (spec.isInterval()) {
    if (!tick || *tick > until) {
      return span;
    }
    const std::int64_t d = spec.interval().count();
    // The newest: until itself or the last multiple of d before it.
    const SysSeconds last = until - seconds{floorMod(until.time_since_epoch().count(), d)};
    span.count = static_cast<std::uint64_t>((last - *tick).count() / d) + 1;
    const std::uint64_t n = std::min<std::uint64_t>(span.count, keep);
    for (std::uint64_t i = n; i > 0; --i) {
      span.newest.push_back(last - seconds{d} * static_cast<std::int64_t>(i - 1));
    }
    return span;
  }
  while (tick && *tick <= until) {
    ++span.count;
    span.newest.push_back(*tick);
    if (span.newest.size() > keep) {
      span.newest.pop_front();
    }
    tick = spec.nextAfter(*tick);
  }
  return span;
}

}  // namespace

DueTicks dueTicks(const ScheduleSpec& spec, SysSeconds fired_through, SysSeconds now,
                  CatchUp policy, int limit) {
  DueTicks due;
  due.next = spec.nextAfter(std::max(fired_through, now));
  if (fired_through >= now) {
    return due;
  }
  SysSeconds from = fired_through;
  if (!spec.isInterval() && now - from > kLookback) {
    from = now - kLookback;
  }
  // On time: less than kOnTime old. Every one is made, whatever the
  // policy: a pass that runs a few seconds late (a retry after an error,
  // a slow commit) misses nothing.
  const SysSeconds late_until = std::max(from, now - kOnTime);
  Span on_time = ticksIn(spec, late_until, now, std::numeric_limits<std::size_t>::max());
  std::size_t keep_late = 0;
  if (policy == CatchUp::kAll) {
    keep_late = static_cast<std::size_t>(std::max(limit, 1));
  } else if (policy == CatchUp::kLast && on_time.count == 0) {
    keep_late = 1;
  }
  Span late = ticksIn(spec, from, late_until, std::max<std::size_t>(keep_late, 1));
  while (late.newest.size() > keep_late) {
    late.newest.pop_front();
  }
  due.missed = late.count - late.newest.size();
  due.fire.assign(late.newest.begin(), late.newest.end());
  due.fire.insert(due.fire.end(), on_time.newest.begin(), on_time.newest.end());
  return due;
}

}  // namespace jobd
