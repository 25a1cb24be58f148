// The daemon's log calls: jobd::logs::info("JOB_FINISHED id={} ...", ...)
// as spdlog::info, with every argument marked in the rendered message, so
// that structured records (log_format keyvalue and json,
// core/log_record.hpp) take event names and `key=` field names from the
// format string alone. An argument's text (a job's message, a payload, a
// server's reply) is always one field's value or part of msg: it can
// neither add a field nor start a line. Control characters in arguments
// are escaped (\n, \r, \t); the marks are removed from every output.
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace jobd::logs {

// Around each argument's text in a rendered message; never in the text
// itself (escaped as '?').
inline constexpr char kArgStart = '\x1e';
inline constexpr char kArgEnd = '\x1f';

// An argument's text, made safe to stand between the marks (as the
// formatter below writes it).
std::string escapedArgument(std::string_view text);
// The message without its marks, for text output.
std::string unmarked(std::string_view message);

template <class T>
struct Marked {
  const T& value;
};

template <class T>
auto marked(const T& value) {
  return Marked<T>{value};
}

// An event name chosen by the code (never by a job, a payload or a peer),
// passed as an argument where one call logs several events: it is written
// unmarked, so structured records take it as the event. Only upper-case
// letters, digits and '_' are kept.
struct Event {
  std::string_view name;
};

inline Event marked(const Event& event) {
  return event;
}

template <class... Args>
std::string format(fmt::format_string<Args...> format, Args&&... args) {
  return fmt::format(fmt::runtime(fmt::string_view(format)), marked(args)...);
}

template <class... Args>
void log(spdlog::level::level_enum level, fmt::format_string<Args...> format, Args&&... args) {
  if (spdlog::should_log(level)) {
    spdlog::log(level, fmt::runtime(fmt::string_view(format)), marked(args)...);
  }
}
template <class... Args>
void trace(fmt::format_string<Args...> format, Args&&... args) {
  log(spdlog::level::trace, format, std::forward<Args>(args)...);
}
template <class... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  log(spdlog::level::debug, format, std::forward<Args>(args)...);
}
template <class... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  log(spdlog::level::info, format, std::forward<Args>(args)...);
}
template <class... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  log(spdlog::level::warn, format, std::forward<Args>(args)...);
}
template <class... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  log(spdlog::level::err, format, std::forward<Args>(args)...);
}
template <class... Args>
void critical(fmt::format_string<Args...> format, Args&&... args) {
  log(spdlog::level::critical, format, std::forward<Args>(args)...);
}

}  // namespace jobd::logs

// A marked argument: formatted with its own format spec, escaped, and
// wrapped in the marks.
template <class T>
struct fmt::formatter<jobd::logs::Marked<T>> {
  std::string spec = "{}";

  auto parse(fmt::format_parse_context& ctx) {
    auto it = ctx.begin();
    auto end = it;
    while (end != ctx.end() && *end != '}') {
      ++end;
    }
    if (end != it) {
      spec = "{:" + std::string(it, end) + "}";
    }
    return end;
  }

  template <class Context>
  auto format(const jobd::logs::Marked<T>& arg, Context& ctx) const {
    // On the stack for the usual short value: one JOB_FINISHED line per job.
    fmt::memory_buffer text;
    fmt::format_to(std::back_inserter(text), fmt::runtime(spec), arg.value);
    auto out = ctx.out();
    *out++ = jobd::logs::kArgStart;
    for (char c : text) {
      if (c == '\n' || c == '\r' || c == '\t') {
        *out++ = '\\';
        *out++ = c == '\n' ? 'n' : (c == '\r' ? 'r' : 't');
      } else if (c == jobd::logs::kArgStart || c == jobd::logs::kArgEnd) {
        *out++ = '?';
      } else {
        *out++ = c;
      }
    }
    *out++ = jobd::logs::kArgEnd;
    return out;
  }
};

template <>
struct fmt::formatter<jobd::logs::Event> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }

  template <class Context>
  auto format(const jobd::logs::Event& event, Context& ctx) const {
    auto out = ctx.out();
    for (char c : event.name) {
      if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
        *out++ = c;
      }
    }
    return out;
  }
};
