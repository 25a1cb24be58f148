// A parser for lazr-style INI text (SPEC §3): "[section]" headers, "key: value"
// or "key = value" lines, whole-line comments starting with '#' or ';'. A value
// runs to the end of its line: '#' and ';' inside it are kept. Called by
// Config on the thread that loads the configuration.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config_problem.hpp"

namespace jobd::config {

struct IniEntry {
  std::string key;
  std::string value;
  int line = 0;
};

struct IniSection {
  std::string name;
  int line = 0;
  std::vector<IniEntry> entries;

  const IniEntry* find(std::string_view key) const;
};

struct IniDocument {
  std::string origin;
  std::vector<IniSection> sections;

  const IniSection* find(std::string_view name) const;
};

// Parses text; every malformed line, duplicate section and duplicate key is
// appended to problems and skipped, so that one pass reports them all.
IniDocument parseIni(std::string_view text, const std::string& origin,
                     std::vector<ConfigProblem>& problems);

}  // namespace jobd::config
