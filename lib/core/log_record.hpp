// One log line in the format an operator chose with [jobd] log_format:
// structured records for journald and log shippers. A message that starts
// with an event name (DAEMON_READY, JOB_FINISHED ...) gives an `event`
// field; its `key=value` words become fields of their own; the other words
// stay in `msg`. Names come from the format string only: the text of an
// argument, marked by jobd::logs (core/log.hpp), is a value, whatever it
// holds. Pure functions, any thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobd {

enum class LogFormat { kText, kKeyValue, kJson };

// "text", "keyvalue" or "json" (the configuration's words; validated there).
LogFormat logFormatFromName(std::string_view name);

// time, level, event (when there is one), the message's key=value words,
// then msg (when words are left), in that order.
std::vector<std::pair<std::string, std::string>> logFields(std::string_view time,
                                                           std::string_view level,
                                                           std::string_view message);

// One line without its newline: `key=value` words, a value quoted when it
// holds a space, a quote, an equals sign or nothing; or one JSON object.
std::string formatLogRecord(LogFormat format, std::string_view time, std::string_view level,
                            std::string_view message);

}  // namespace jobd
