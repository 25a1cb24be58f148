#include "config/ini_parser.hpp"

#include <algorithm>

namespace jobd::config {
namespace {

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

bool validName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

class Parser {
 public:
  Parser(const std::string& origin, std::vector<ConfigProblem>& problems) : problems_(problems) {
    doc_.origin = origin;
  }

  void line(std::string_view raw, int number) {
    std::string_view text = trim(raw);
    if (text.empty() || text.front() == '#' || text.front() == ';') {
      return;
    }
    if (text.front() == '[') {
      header(text, number);
    } else {
      entry(text, number);
    }
  }

  IniDocument finish() { return std::move(doc_); }

 private:
  void problem(int line, std::string section, std::string key, std::string message) {
    problems_.push_back(
        {doc_.origin, line, std::move(section), std::move(key), std::move(message)});
  }

  void header(std::string_view text, int number) {
    current_ = nullptr;
    if (text.back() != ']') {
      problem(number, "", "", "malformed section header '" + std::string(text) + "'");
      return;
    }
    std::string_view name = trim(text.substr(1, text.size() - 2));
    if (!validName(name)) {
      problem(number, "", "", "invalid section name '" + std::string(name) + "'");
      return;
    }
    for (const IniSection& s : doc_.sections) {
      if (s.name == name) {
        problem(number, std::string(name), "",
                "duplicate section (first defined at line " + std::to_string(s.line) + ")");
        return;
      }
    }
    doc_.sections.push_back({std::string(name), number, {}});
    current_ = &doc_.sections.back();
  }

  void entry(std::string_view text, int number) {
    std::size_t sep = text.find_first_of(":=");
    if (sep == std::string_view::npos) {
      problem(number, current_ ? current_->name : "", "",
              "expected 'key: value' or 'key = value', got '" + std::string(text) + "'");
      return;
    }
    std::string key(trim(text.substr(0, sep)));
    std::string value(trim(text.substr(sep + 1)));
    if (!validName(key)) {
      problem(number, current_ ? current_->name : "", "", "invalid key name '" + key + "'");
      return;
    }
    if (current_ == nullptr) {
      problem(number, "", key, "key outside of any section");
      return;
    }
    if (const IniEntry* first = current_->find(key)) {
      problem(number, current_->name, key,
              "duplicate key (first set at line " + std::to_string(first->line) + ")");
      return;
    }
    current_->entries.push_back({std::move(key), std::move(value), number});
  }

  IniDocument doc_;
  IniSection* current_ = nullptr;
  std::vector<ConfigProblem>& problems_;
};

}  // namespace

const IniEntry* IniSection::find(std::string_view key) const {
  for (const IniEntry& e : entries) {
    if (e.key == key) {
      return &e;
    }
  }
  return nullptr;
}

const IniSection* IniDocument::find(std::string_view name) const {
  for (const IniSection& s : sections) {
    if (s.name == name) {
      return &s;
    }
  }
  return nullptr;
}

IniDocument parseIni(std::string_view text, const std::string& origin,
                     std::vector<ConfigProblem>& problems) {
  Parser parser(origin, problems);
  int number = 0;
  while (!text.empty()) {
    ++number;
    std::size_t end = text.find('\n');
    std::string_view raw = text.substr(0, end);
    parser.line(raw, number);
    if (end == std::string_view::npos) {
      break;
    }
    text.remove_prefix(end + 1);
  }
  return parser.finish();
}

}  // namespace jobd::config
