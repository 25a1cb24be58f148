#include "sql_descriptor.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor sqlDescriptor() {
  return {
      "sql",
      "runs `statement` in the job's own transaction on the section's dbuser",
      {{"statement", true, "", "one SQL statement; $1 is json_data (jsonb), $2 the job id (bigint)",
        [](const std::string& value) -> std::optional<std::string> {
          if (value.find_first_not_of(" \t") == std::string::npos) {
            return "must not be empty";
          }
          return std::nullopt;
        }}}};
}

}  // namespace jobd::jobtypes
