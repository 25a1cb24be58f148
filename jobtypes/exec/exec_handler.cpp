#include "exec_handler.hpp"

#include <stdexcept>

#include "core/errors.hpp"

#include "config/argv.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor execDescriptor() {
  return {"exec",
          "runs `command` with json_data on stdin; exit 0 completes, 75 retries, 65 user error",
          {{"command", true, "", "argv split at white space, quotes group words; no shell runs it",
            [](const std::string& value) -> std::optional<std::string> {
              try {
                if (config::splitWords(value).empty()) {
                  return "must name a program";
                }
              } catch (const std::invalid_argument& e) {
                return std::string("cannot split into words: ") + e.what();
              }
              return std::nullopt;
            }}}};
}

std::unique_ptr<runtime::IJobSource> makeExecSource(const config::SectionConfig& section) {
  throw ConfigError("[" + section.name + "] handler: exec is not available in this build yet");
}

}  // namespace jobd::jobtypes
