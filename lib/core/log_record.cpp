#include "core/log_record.hpp"

#include <nlohmann/json.hpp>

#include "core/log.hpp"

namespace jobd::logs {

std::string escapedArgument(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == kArgStart || c == kArgEnd) {
      out += '?';
    } else {
      out += c;
    }
  }
  return out;
}

std::string unmarked(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (char c : message) {
    if (c != kArgStart && c != kArgEnd) {
      out += c;
    }
  }
  return out;
}

}  // namespace jobd::logs

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

namespace {

// A word of a message: split at spaces outside argument marks. `lead` is
// the format string's text before the word's first argument.
struct Word {
  std::string text;  // without marks
  std::string lead;
  bool has_argument = false;
};

std::vector<Word> wordsOf(std::string_view message) {
  std::vector<Word> words(1);
  bool in_argument = false;
  for (char c : message) {
    Word& word = words.back();
    if (c == logs::kArgStart) {
      in_argument = true;
      word.has_argument = true;
    } else if (c == logs::kArgEnd) {
      in_argument = false;
    } else if (c == ' ' && !in_argument) {
      words.emplace_back();
    } else {
      word.text += c;
      if (!word.has_argument) {
        word.lead += c;
      }
    }
  }
  return words;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> logFields(std::string_view time,
                                                           std::string_view level,
                                                           std::string_view message) {
  std::vector<std::pair<std::string, std::string>> fields = {{"time", std::string(time)},
                                                             {"level", std::string(level)}};
  std::string rest;
  bool first = true;
  for (const Word& word : wordsOf(message)) {
    std::string_view key, value;
    // Names come from the format string only: an event is a word with no
    // argument in it, a field's key and '=' precede the word's first one.
    if (first && !word.has_argument && isEventName(word.text)) {
      fields.emplace_back("event", word.text);
    } else if (splitField(word.lead, key, value) && !reserved(key)) {
      fields.emplace_back(std::string(key), word.text.substr(key.size() + 1));
    } else if (!word.text.empty()) {
      rest += (rest.empty() ? "" : " ") + word.text;
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
    return std::string(time) + " " + std::string(level) + " " + logs::unmarked(message);
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
