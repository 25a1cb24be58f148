#include "core/duration.hpp"

#include <cmath>
#include <limits>

namespace jobd {
namespace {

// Splits "1.5m" into the number 1.5 and the unit "m". The number is parsed
// by hand, not with strtod, so that locales, exponents, "inf" and leading
// signs are all refused.
bool splitNumber(std::string_view text, double& number, std::string_view& unit) {
  std::size_t i = 0;
  double value = 0;
  bool digits = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    value = value * 10 + (text[i] - '0');
    digits = true;
    ++i;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    double scale = 0.1;
    bool fraction = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value += (text[i] - '0') * scale;
      scale /= 10;
      fraction = true;
      ++i;
    }
    if (!fraction) {
      return false;
    }
  }
  if (!digits) {
    return false;
  }
  number = value;
  unit = text.substr(i);
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!splitNumber(trim(text), number, unit)) {
    return std::nullopt;
  }
  double ms_per_unit = 0;
  if (unit.empty() || unit == "s") {
    ms_per_unit = 1000;
  } else if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "m") {
    ms_per_unit = 60'000;
  } else if (unit == "h") {
    ms_per_unit = 3'600'000;
  } else if (unit == "d") {
    ms_per_unit = 86'400'000;
  } else {
    return std::nullopt;
  }
  double ms = std::round(number * ms_per_unit);
  // About 290 years: far beyond any sensible setting, well inside int64 and
  // PostgreSQL's interval range.
  if (ms > 1e13) {
    return std::nullopt;
  }
  return Duration(static_cast<std::int64_t>(ms));
}

std::optional<std::uint64_t> parseSize(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!splitNumber(trim(text), number, unit)) {
    return std::nullopt;
  }
  double multiplier = 0;
  if (unit.empty()) {
    multiplier = 1;
  } else if (unit == "K") {
    multiplier = 1024.0;
  } else if (unit == "M") {
    multiplier = 1024.0 * 1024;
  } else if (unit == "G") {
    multiplier = 1024.0 * 1024 * 1024;
  } else {
    return std::nullopt;
  }
  double bytes = std::round(number * multiplier);
  if (bytes > 1e15) {
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(bytes);
}

std::string formatDuration(Duration d) {
  std::int64_t ms = d.count();
  struct Unit {
    std::int64_t ms;
    const char* suffix;
  };
  static constexpr Unit kUnits[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  if (ms != 0) {
    for (const Unit& u : kUnits) {
      if (ms % u.ms == 0) {
        return std::to_string(ms / u.ms) + u.suffix;
      }
    }
    return std::to_string(ms) + "ms";
  }
  return "0s";
}

std::string formatSize(std::uint64_t bytes) {
  static constexpr std::pair<std::uint64_t, const char*> kUnits[] = {
      {1024ULL * 1024 * 1024, "G"}, {1024ULL * 1024, "M"}, {1024ULL, "K"}};
  if (bytes != 0) {
    for (const auto& [size, suffix] : kUnits) {
      if (bytes % size == 0) {
        return std::to_string(bytes / size) + suffix;
      }
    }
  }
  return std::to_string(bytes);
}

std::string toSqlInterval(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count()) +
         " microseconds";
}

}  // namespace jobd
