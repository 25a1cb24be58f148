#include "core/log_record.hpp"

#include <nlohmann/json.hpp>

namespace jobd {
namespace {

bool isEventName(std::string_view word) {
  if (word.size() < 2 || word.front() < 'A' || word.front() > 'Z') {
    return false;
  }
  for (char c : word) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

// A word `key=value` whose key is a lower-case identifier.
bool splitField(std::string_view word, std::string_view& key, std::string_view& value) {
  std::size_t equals = word.find('=');
  if (equals == 0 || equals == std::string_view::npos) {
    return false;
  }
  key = word.substr(0, equals);
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  value = word.substr(equals + 1);
  return true;
}

bool reserved(std::string_view key) {
  return key == "time" || key == "level" || key == "event" || key == "msg";
}

std::string quotedValue(std::string_view value) {
  bool plain = !value.empty() && value.find_first_of(" \t\"=\\\n") == std::string_view::npos;
  if (plain) {
    return std::string(value);
  }
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

LogFormat logFormatFromName(std::string_view name) {
  if (name == "json") {
    return LogFormat::kJson;
  }
  return name == "keyvalue" ? LogFormat::kKeyValue : LogFormat::kText;
}

std::vector<std::pair<std::string, std::string>> logFields(std::string_view time,
                                                           std::string_view level,
                                                           std::string_view message) {
  std::vector<std::pair<std::string, std::string>> fields = {{"time", std::string(time)},
                                                             {"level", std::string(level)}};
  std::string rest;
  bool first = true;
  std::size_t pos = 0;
  while (pos < message.size()) {
    std::size_t space = message.find(' ', pos);
    std::string_view word =
        message.substr(pos, space == std::string_view::npos ? std::string_view::npos : space - pos);
    pos = space == std::string_view::npos ? message.size() : space + 1;
    std::string_view key, value;
    if (first && isEventName(word)) {
      fields.emplace_back("event", std::string(word));
    } else if (splitField(word, key, value) && !reserved(key)) {
      fields.emplace_back(std::string(key), std::string(value));
    } else if (!word.empty()) {
      rest += (rest.empty() ? "" : " ") + std::string(word);
    }
    first = false;
  }
  if (!rest.empty()) {
    fields.emplace_back("msg", std::move(rest));
  }
  return fields;
}

std::string formatLogRecord(LogFormat format, std::string_view time, std::string_view level,
                            std::string_view message) {
  if (format == LogFormat::kText) {
    return std::string(time) + " " + std::string(level) + " " + std::string(message);
  }
  auto fields = logFields(time, level, message);
  if (format == LogFormat::kJson) {
    nlohmann::ordered_json object = nlohmann::ordered_json::object();
    for (auto& [key, value] : fields) {
      if (!object.contains(key)) {
        object[key] = std::move(value);
      }
    }
    // Invalid UTF-8 (a job's own bytes) is replaced, not thrown on.
    return object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string line;
  for (const auto& [key, value] : fields) {
    line += (line.empty() ? "" : " ") + key + "=" + quotedValue(value);
  }
  return line;
}

}  // namespace jobd
