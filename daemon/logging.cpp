#include "logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>

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

void setupLogging(const std::string& level, int verbosity, bool timestamps) {
  auto logger =
      std::make_shared<spdlog::logger>("jobd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<LevelFlag>('*').set_pattern(timestamps ? "%Y-%m-%dT%H:%M:%S.%eZ %* %v"
                                                             : "%* %v");
  logger->set_formatter(std::move(formatter));
  logger->set_level(levelWith(level, verbosity));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

void setLogLevel(const std::string& level) {
  spdlog::default_logger()->set_level(levelWith(level, 0));
}

}  // namespace jobd::cli
