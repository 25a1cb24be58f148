// Logging set-up for every jobd command: spdlog's default logger on stderr,
// lines as `<ISO-8601 UTC time> <LEVEL padded to 7> <message>` (SPEC §7),
// or with [jobd] log_format = keyvalue or json one structured record per
// line (core/log_record.hpp).
// Called once by main() before any other thread starts.
#pragma once

#include <string>

namespace jobd::cli {

// level: a [jobd] log_level name; verbosity: -v count minus -q count, each
// step moving one level. Without timestamps for a process runner, whose
// lines the daemon logs again with its own. format: a log_format word.
void setupLogging(const std::string& level, int verbosity, bool timestamps = true,
                  const std::string& format = "text");
// A reload's log_level and log_format, for the logger setupLogging made.
void setLogLevel(const std::string& level);
void setLogFormat(const std::string& format);

}  // namespace jobd::cli
