// ConfigProblem: one thing wrong with a configuration file, located by file,
// line, section and key, and ConfigInvalid, the ConfigError that carries all
// of them. Built by the parser and the validator on the calling thread.
#pragma once

#include <string>
#include <vector>

#include "core/errors.hpp"

namespace jobd::config {

struct ConfigProblem {
  std::string origin;   // the file name
  int line = 0;         // 0 when the problem has no single line
  std::string section;  // empty when outside any section
  std::string key;      // empty when the problem is the section itself
  std::string message;

  // "<origin>:<line>: [section] key: message"
  std::string describe() const;
};

class ConfigInvalid : public ConfigError {
 public:
  explicit ConfigInvalid(std::vector<ConfigProblem> problems);
  const std::vector<ConfigProblem>& problems() const { return problems_; }

 private:
  std::vector<ConfigProblem> problems_;
};

}  // namespace jobd::config
