// Splits a command line such as the exec handler's `command` into words, the
// way a shell would without running one (SPEC §3): words break at white
// space; single quotes keep everything literally; double quotes group words
// and honour \" and \\; outside quotes a backslash escapes the next
// character. No variables, globs or operators. Pure function, any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace jobd::config {

// Throws std::invalid_argument naming the problem (an unterminated quote or
// a trailing backslash).
std::vector<std::string> splitWords(std::string_view text);

}  // namespace jobd::config
