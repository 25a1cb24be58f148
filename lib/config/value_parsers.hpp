// Parsers for configuration values, shared by Config's key tables and the
// handlers' own keys. Each takes the value and an error string to fill, and
// returns the parsed value or nullopt (with error set). Pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace jobd::config {

template <class V>
using ValueParser = std::function<std::optional<V>(const std::string&, std::string&)>;

ValueParser<int> intBetween(int min, int max);
ValueParser<std::optional<int>> optionalIntBetween(int min, int max);
ValueParser<Duration> durationAtLeast(Duration min);
// A duration from min to max: for keys that become PostgreSQL millisecond
// settings (statement_timeout and idle_in_transaction_session_timeout take
// at most 2^31 - 1 ms, about 24.8 days), where a longer one would make every
// connection fail.
ValueParser<Duration> durationBetween(Duration min, Duration max);
ValueParser<std::uint64_t> sizeBetween(std::uint64_t min, std::uint64_t max);
ValueParser<std::optional<std::uint64_t>> optionalSizeAtLeast(std::uint64_t min);

std::optional<std::string> parseConninfo(const std::string& value, std::string& error);
std::optional<std::string> parseNonEmpty(const std::string& value, std::string& error);
std::optional<std::string> parseIdentifier(const std::string& value, std::string& error);
std::optional<std::string> parseIdentifierOrEmpty(const std::string& value, std::string& error);
std::optional<std::string> parseAbsolutePath(const std::string& value, std::string& error);
std::optional<std::string> parseAbsolutePathOrEmpty(const std::string& value, std::string& error);
std::optional<std::string> parseLogLevel(const std::string& value, std::string& error);
// text, keyvalue or json.
std::optional<std::string> parseLogFormat(const std::string& value, std::string& error);
std::optional<std::string> parseHostPortOrEmpty(const std::string& value, std::string& error);
std::optional<std::string> parseSmtpUrl(const std::string& value, std::string& error);
std::optional<std::string> parseAddressOrEmpty(const std::string& value, std::string& error);
std::optional<std::vector<std::string>> parseAddressList(const std::string& value,
                                                         std::string& error);
std::optional<bool> parseBool(const std::string& value, std::string& error);
// Comma-separated host names (letters, digits, '.', '-', ':', '[' and ']'),
// lower-cased; empty: none.
std::optional<std::vector<std::string>> parseHostList(const std::string& value, std::string& error);
// Whether a host:port that parseHostPortOrEmpty took is on a loopback
// address (127.0.0.0/8, [::1], localhost).
bool isLoopbackListen(const std::string& host_port);
std::optional<RetryBackoff> parseBackoff(const std::string& value, std::string& error);
std::optional<RunnerKind> parseRunner(const std::string& value, std::string& error);
// Schedules (core/schedule_spec.hpp): a cron expression or "every DUR"
// (empty: no schedule), an IANA time zone, a JSON object, and the
// catch-up and overlap policies by name.
std::optional<std::string> parseScheduleOrEmpty(const std::string& value, std::string& error);
std::optional<std::string> parseTimeZone(const std::string& value, std::string& error);
std::optional<std::string> parseJsonObject(const std::string& value, std::string& error);
std::optional<std::string> parseCatchUpName(const std::string& value, std::string& error);
std::optional<std::string> parseOverlapName(const std::string& value, std::string& error);

// Limits by key (issue 21): a key ("type", "target", "target_prefix:SEP"
// or "data:FIELD"), and a rate "N/DURATION" (100/1s, 10/m; the duration
// must be at least 1ms).
std::optional<std::string> parseLimitKey(const std::string& value, std::string& error);
struct RateLimit {
  int count = 0;
  Duration period = std::chrono::seconds(1);
};
std::optional<RateLimit> parseRateLimit(const std::string& value, std::string& error);

// A bare mail address check: local@domain, no spaces or angle brackets.
bool isMailAddress(const std::string& value);

}  // namespace jobd::config
