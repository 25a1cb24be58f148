#include "logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "core/log.hpp"
#include "core/log_record.hpp"

namespace jobd::cli {
namespace {

// %* : the level as Launchpad's logs print it, upper case, padded to 7.
class LevelFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string_view name;
    switch (msg.level) {
      case spdlog::level::trace:
        name = "TRACE  ";
        break;
      case spdlog::level::debug:
        name = "DEBUG  ";
        break;
      case spdlog::level::info:
        name = "INFO   ";
        break;
      case spdlog::level::warn:
        name = "WARNING";
        break;
      case spdlog::level::err:
        name = "ERROR  ";
        break;
      case spdlog::level::critical:
        name = "CRITICAL";
        break;
      default:
        name = "       ";
        break;
    }
    dest.append(name.data(), name.data() + name.size());
  }

  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LevelFlag>();
  }
};

// %& : the message without jobd::logs' argument marks.
class MessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    // Copied in runs between the marks, without a string of its own.
    const char* run = msg.payload.data();
    const char* end = run + msg.payload.size();
    for (const char* at = run; at != end; ++at) {
      if (*at == logs::kArgStart || *at == logs::kArgEnd) {
        dest.append(run, at);
        run = at + 1;
      }
    }
    dest.append(run, end);
  }

  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<MessageFlag>();
  }
};

// log_format = keyvalue or json: one record per line (core/log_record.hpp).
class StructuredFormatter : public spdlog::formatter {
 public:
  explicit StructuredFormatter(LogFormat format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto since_epoch = msg.time.time_since_epoch();
    std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000;
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char time[40];
    std::size_t n = std::strftime(time, sizeof time, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(time + n, sizeof time - n, ".%03dZ", static_cast<int>(millis));
    std::string line = formatLogRecord(format_, time, levelWord(msg.level),
                                       std::string_view(msg.payload.data(), msg.payload.size()));
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<StructuredFormatter>(format_);
  }

 private:
  static std::string_view levelWord(spdlog::level::level_enum level) {
    switch (level) {
      case spdlog::level::trace:
        return "trace";
      case spdlog::level::debug:
        return "debug";
      case spdlog::level::info:
        return "info";
      case spdlog::level::warn:
        return "warning";
      case spdlog::level::err:
        return "error";
      case spdlog::level::critical:
        return "critical";
      default:
        return "off";
    }
  }

  LogFormat format_;
};

std::unique_ptr<spdlog::formatter> formatterFor(const std::string& format, bool timestamps) {
  LogFormat chosen = logFormatFromName(format);
  if (chosen != LogFormat::kText) {
    return std::make_unique<StructuredFormatter>(chosen);
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<LevelFlag>('*').add_flag<MessageFlag>('&').set_pattern(
      timestamps ? "%Y-%m-%dT%H:%M:%S.%eZ %* %&" : "%* %&");
  return formatter;
}

spdlog::level::level_enum levelFromName(const std::string& name) {
  if (name == "warning") {
    return spdlog::level::warn;
  }
  return spdlog::level::from_str(name);
}

spdlog::level::level_enum levelWith(const std::string& level, int verbosity) {
  int value = static_cast<int>(levelFromName(level)) - verbosity;
  value = std::clamp(value, static_cast<int>(spdlog::level::trace),
                     static_cast<int>(spdlog::level::off));
  return static_cast<spdlog::level::level_enum>(value);
}

}  // namespace

void setupLogging(const std::string& level, int verbosity, bool timestamps,
                  const std::string& format) {
  auto logger =
      std::make_shared<spdlog::logger>("jobd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(formatterFor(format, timestamps));
  logger->set_level(levelWith(level, verbosity));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

void setLogLevel(const std::string& level) {
  spdlog::default_logger()->set_level(levelWith(level, 0));
}

void setLogFormat(const std::string& format) {
  spdlog::default_logger()->set_formatter(formatterFor(format, true));
}

}  // namespace jobd::cli
