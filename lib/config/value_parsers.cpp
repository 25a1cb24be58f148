#include "config/value_parsers.hpp"

#include "core/schedule_spec.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace jobd::config {
namespace {

bool identifierChars(const std::string& value) {
  return std::all_of(value.begin(), value.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

std::optional<long long> parseInteger(const std::string& value) {
  long long n = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, n);
  if (ec != std::errc() || ptr != end || value.empty()) {
    return std::nullopt;
  }
  return n;
}

}  // namespace

ValueParser<int> intBetween(int min, int max) {
  return [min, max](const std::string& value, std::string& error) -> std::optional<int> {
    std::optional<long long> n = parseInteger(value);
    if (!n || *n < min || *n > max) {
      error = "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
              ", got '" + value + "'";
      return std::nullopt;
    }
    return static_cast<int>(*n);
  };
}

ValueParser<std::optional<int>> optionalIntBetween(int min, int max) {
  ValueParser<int> inner = intBetween(min, max);
  return
      [inner](const std::string& value, std::string& error) -> std::optional<std::optional<int>> {
        if (value.empty()) {
          return std::optional<int>();
        }
        std::optional<int> n = inner(value, error);
        if (!n) {
          return std::nullopt;
        }
        return n;
      };
}

ValueParser<Duration> durationBetween(Duration min, Duration max) {
  return [min, max](const std::string& value, std::string& error) -> std::optional<Duration> {
    std::optional<Duration> d = parseDuration(value);
    if (!d) {
      error = "expected a duration such as 500ms, 30s, 5m, 2h or 7d, got '" + value + "'";
      return std::nullopt;
    }
    if (*d < min) {
      error = "must be at least " + formatDuration(min) + ", got '" + value + "'";
      return std::nullopt;
    }
    if (*d > max) {
      error = "must be at most " + formatDuration(max) + ", got '" + value + "'";
      return std::nullopt;
    }
    return d;
  };
}

ValueParser<Duration> durationAtLeast(Duration min) {
  return durationBetween(min, Duration::max());
}

ValueParser<std::uint64_t> sizeBetween(std::uint64_t min, std::uint64_t max) {
  return [min, max](const std::string& value, std::string& error) -> std::optional<std::uint64_t> {
    std::optional<std::uint64_t> n = parseSize(value);
    if (!n) {
      error = "expected a size such as 512, 64K, 1M or 2G, got '" + value + "'";
      return std::nullopt;
    }
    if (*n < min || *n > max) {
      error =
          "must be from " + formatSize(min) + " to " + formatSize(max) + ", got '" + value + "'";
      return std::nullopt;
    }
    return n;
  };
}

ValueParser<std::optional<std::uint64_t>> optionalSizeAtLeast(std::uint64_t min) {
  ValueParser<std::uint64_t> inner = sizeBetween(min, 1ULL << 50);
  return [inner](const std::string& value,
                 std::string& error) -> std::optional<std::optional<std::uint64_t>> {
    if (value.empty()) {
      return std::optional<std::uint64_t>();
    }
    std::optional<std::uint64_t> n = inner(value, error);
    if (!n) {
      return std::nullopt;
    }
    return n;
  };
}

std::optional<std::string> parseConninfo(const std::string& value, std::string& error) {
  if (value.empty()) {
    return value;
  }
  char* message = nullptr;
  PQconninfoOption* options = PQconninfoParse(value.c_str(), &message);
  if (options == nullptr) {
    // libpq's message names the bad keyword or URI part; it never echoes a
    // password value.
    std::string text = message ? message : "out of memory";
    PQfreemem(message);
    while (!text.empty() && text.back() == '\n') {
      text.pop_back();
    }
    error = "invalid connection string: " + text;
    return std::nullopt;
  }
  PQconninfoFree(options);
  return value;
}

std::optional<std::string> parseNonEmpty(const std::string& value, std::string& error) {
  if (value.empty()) {
    error = "must not be empty";
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> parseIdentifier(const std::string& value, std::string& error) {
  if (value.empty() || !identifierChars(value)) {
    error = "expected letters, digits, '_' or '-', got '" + value + "'";
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> parseIdentifierOrEmpty(const std::string& value, std::string& error) {
  if (value.empty()) {
    return value;
  }
  return parseIdentifier(value, error);
}

std::optional<std::string> parseAbsolutePath(const std::string& value, std::string& error) {
  if (value.empty() || value.front() != '/') {
    error = "expected an absolute path, got '" + value + "'";
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> parseAbsolutePathOrEmpty(const std::string& value, std::string& error) {
  if (value.empty()) {
    return value;
  }
  return parseAbsolutePath(value, error);
}

std::optional<std::string> parseLogLevel(const std::string& value, std::string& error) {
  static const std::vector<std::string> kLevels = {"trace", "debug",    "info", "warning",
                                                   "error", "critical", "off"};
  if (std::find(kLevels.begin(), kLevels.end(), value) == kLevels.end()) {
    error = "expected trace, debug, info, warning, error, critical or off, got '" + value + "'";
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> parseLogFormat(const std::string& value, std::string& error) {
  if (value != "text" && value != "keyvalue" && value != "json") {
    error = "expected text, keyvalue or json, got '" + value + "'";
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> parseHostPortOrEmpty(const std::string& value, std::string& error) {
  if (value.empty()) {
    return value;
  }
  std::size_t colon = value.rfind(':');
  bool ok = colon != std::string::npos && colon > 0;
  if (ok) {
    std::string host = value.substr(0, colon);
    if (host.front() == '[') {
      ok = host.size() > 2 && host.back() == ']';
    } else {
      ok = host.find(':') == std::string::npos;
    }
    std::optional<long long> port = parseInteger(value.substr(colon + 1));
    ok = ok && port && *port >= 0 && *port <= 65535;
  }
  if (!ok) {
    error = "expected host:port (port 0-65535, 0 for any free one; IPv6 as [::1]:9100), got '" +
            value + "'";
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> parseSmtpUrl(const std::string& value, std::string& error) {
  bool ok = (value.rfind("smtp://", 0) == 0 && value.size() > 7) ||
            (value.rfind("smtps://", 0) == 0 && value.size() > 8);
  if (!ok) {
    error = "expected an smtp:// or smtps:// URL, got '" + value + "'";
    return std::nullopt;
  }
  return value;
}

bool isMailAddress(const std::string& value) {
  std::size_t at = value.find('@');
  if (at == std::string::npos || at == 0 || at + 1 >= value.size() ||
      value.find('@', at + 1) != std::string::npos) {
    return false;
  }
  return std::none_of(value.begin(), value.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '<' || c == '>' || c == ',' || c == '"' ||
           static_cast<unsigned char>(c) < 0x20;
  });
}

std::optional<std::string> parseAddressOrEmpty(const std::string& value, std::string& error) {
  if (!value.empty() && !isMailAddress(value)) {
    error = "expected a mail address such as jobd@example.com, got '" + value + "'";
    return std::nullopt;
  }
  return value;
}

std::optional<std::vector<std::string>> parseAddressList(const std::string& value,
                                                         std::string& error) {
  std::vector<std::string> addresses;
  std::size_t start = 0;
  while (start <= value.size() && !value.empty()) {
    std::size_t comma = value.find(',', start);
    std::string item = value.substr(start, comma == std::string::npos ? comma : comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!isMailAddress(item)) {
      error = "expected comma-separated mail addresses, got '" + item + "'";
      return std::nullopt;
    }
    addresses.push_back(item);
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  return addresses;
}

std::optional<std::vector<std::string>> parseHostList(const std::string& value,
                                                      std::string& error) {
  std::vector<std::string> hosts;
  std::string item;
  std::istringstream items(value);
  while (std::getline(items, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    bool ok = !item.empty();
    for (char& c : item) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
                  c == '[' || c == ']');
    }
    if (!ok) {
      error = "expected comma-separated host names, got '" + item + "'";
      return std::nullopt;
    }
    hosts.push_back(item);
  }
  return hosts;
}

bool isLoopbackListen(const std::string& host_port) {
  std::string host = host_port.substr(0, host_port.rfind(':'));
  if (host == "localhost") {
    return true;
  }
  // Addresses only, read as numbers: "127.example.net" is a name.
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    in6_addr v6{};
    return ::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6) == 1 &&
           IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

std::optional<bool> parseBool(const std::string& value, std::string& error) {
  std::string v = value;
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v == "true" || v == "yes" || v == "on" || v == "1") {
    return true;
  }
  if (v == "false" || v == "no" || v == "off" || v == "0") {
    return false;
  }
  error = "expected true or false, got '" + value + "'";
  return std::nullopt;
}

std::optional<RetryBackoff> parseBackoff(const std::string& value, std::string& error) {
  if (value == "fixed") {
    return RetryBackoff::kFixed;
  }
  if (value == "exponential") {
    return RetryBackoff::kExponential;
  }
  error = "expected fixed or exponential, got '" + value + "'";
  return std::nullopt;
}

std::optional<RunnerKind> parseRunner(const std::string& value, std::string& error) {
  if (value == "thread") {
    return RunnerKind::kThread;
  }
  if (value == "process") {
    return RunnerKind::kProcess;
  }
  if (value == "python") {
    return RunnerKind::kPython;
  }
  error = "expected thread, process or python, got '" + value + "'";
  return std::nullopt;
}

std::optional<std::string> parseScheduleOrEmpty(const std::string& value, std::string& error) {
  if (value.empty()) {
    return value;
  }
  try {
    ScheduleSpec::parse(value, "UTC");
    return value;
  } catch (const std::invalid_argument& e) {
    error = e.what();
    return std::nullopt;
  }
}

std::optional<std::string> parseTimeZone(const std::string& value, std::string& error) {
  try {
    return ScheduleSpec::parse("every 1s", value).timeZone();
  } catch (const std::invalid_argument& e) {
    error = e.what();
    return std::nullopt;
  }
}

std::optional<std::string> parseJsonObject(const std::string& value, std::string& error) {
  auto json = nlohmann::json::parse(value, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    error = "expected a JSON object such as {\"key\": 1}, got '" + value + "'";
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> parseCatchUpName(const std::string& value, std::string& error) {
  try {
    return std::string(catchUpName(parseCatchUp(value)));
  } catch (const std::invalid_argument& e) {
    error = e.what();
    return std::nullopt;
  }
}

std::optional<std::string> parseOverlapName(const std::string& value, std::string& error) {
  try {
    return std::string(overlapName(parseOverlap(value)));
  } catch (const std::invalid_argument& e) {
    error = e.what();
    return std::nullopt;
  }
}

std::optional<std::string> parseLimitKey(const std::string& value, std::string& error) {
  if (value == "type" || value == "target") {
    return value;
  }
  for (const std::string prefix : {"target_prefix:", "data:"}) {
    if (value.rfind(prefix, 0) == 0 && value.size() > prefix.size()) {
      return value;
    }
  }
  error = "expected type, target, target_prefix:SEPARATOR or data:FIELD, got '" + value + "'";
  return std::nullopt;
}

std::optional<RateLimit> parseRateLimit(const std::string& value, std::string& error) {
  std::string::size_type slash = value.find('/');
  std::string count = value.substr(0, slash);
  std::string period = slash == std::string::npos ? "" : value.substr(slash + 1);
  if (!period.empty() && std::isalpha(static_cast<unsigned char>(period.front())) != 0) {
    period.insert(0, "1");  // 100/s is 100/1s
  }
  std::string ignored;
  std::optional<int> n = intBetween(1, 1000000)(count, ignored);
  std::optional<Duration> per = parseDuration(period);
  if (slash == std::string::npos || !n || !per || *per < std::chrono::milliseconds(1)) {
    error =
        "expected N/DURATION with N from 1 to 1000000 and a duration of at least 1ms "
        "(100/1s, 10/m), got '" +
        value + "'";
    return std::nullopt;
  }
  return RateLimit{*n, *per};
}

}  // namespace jobd::config
