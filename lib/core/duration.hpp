// Durations and sizes as the configuration and the CLI write them (SPEC §3):
// durations take ms s m h d (a bare number is seconds), sizes take K M G
// (powers of 1024; a bare number is bytes). Pure functions, any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jobd {

using Duration = std::chrono::milliseconds;

// Parses "250ms", "5s", "1.5m", "2h", "30d", "10". nullopt when malformed,
// negative or out of range.
std::optional<Duration> parseDuration(std::string_view text);

// Parses "512", "64K", "1M", "2G". nullopt when malformed or out of range.
std::optional<std::uint64_t> parseSize(std::string_view text);

// The shortest exact spelling: "30s", "1500ms", "5m", "30d".
std::string formatDuration(Duration d);

// "1M", "64K", "100" (bytes), exact.
std::string formatSize(std::uint64_t bytes);

// A PostgreSQL interval literal for d, in microseconds: "1500000 microseconds".
std::string toSqlInterval(Duration d);

}  // namespace jobd
