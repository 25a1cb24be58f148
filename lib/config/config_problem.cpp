#include "config/config_problem.hpp"

namespace jobd::config {
namespace {

std::string summarize(const std::vector<ConfigProblem>& problems) {
  if (problems.empty()) {
    return "invalid configuration";
  }
  std::string text = problems.front().describe();
  if (problems.size() > 1) {
    text += " (and " + std::to_string(problems.size() - 1) + " more problem" +
            (problems.size() > 2 ? "s" : "") + "; run jobd check-config)";
  }
  return text;
}

}  // namespace

std::string ConfigProblem::describe() const {
  std::string text = origin;
  if (line > 0) {
    text += ":" + std::to_string(line);
  }
  text += ": ";
  if (!section.empty()) {
    text += "[" + section + "] ";
  }
  if (!key.empty()) {
    text += key + ": ";
  }
  text += message;
  return text;
}

ConfigInvalid::ConfigInvalid(std::vector<ConfigProblem> problems)
    : ConfigError(summarize(problems)), problems_(std::move(problems)) {}

}  // namespace jobd::config
