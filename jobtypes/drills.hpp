// The `drills` key of the fail and sleep handlers: payloads that crash the
// process running the job, map memory until it fails, or ignore a timeout
// (fault drills) run only in a section that asks for them. They would take
// a thread runner's daemon down with them, so a section must opt in, and
// should use runner = process (README, "Handlers").
#pragma once

#include <optional>
#include <string>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "config/value_parsers.hpp"

namespace jobd::jobtypes {

inline config::HandlerKey drillsKey(const std::string& what) {
  return {"drills", false, "false",
          "true lets payloads ask for " + what +
              " (fault drills: give such a section runner = process)",
          [](const std::string& value) -> std::optional<std::string> {
            std::string error;
            if (!config::parseBool(value, error)) {
              return error;
            }
            return std::nullopt;
          }};
}

inline bool drillsAllowed(const config::SectionConfig& section) {
  auto it = section.handler_options.find("drills");
  std::string error;
  return it != section.handler_options.end() &&
         config::parseBool(it->second, error).value_or(false);
}

}  // namespace jobd::jobtypes
