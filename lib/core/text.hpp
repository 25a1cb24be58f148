// Text that PostgreSQL will store: error messages and tracebacks come from
// handlers and child processes' stderr, which may hold any bytes. A text
// column refuses NUL and bytes that are not UTF-8 (and a tail cut from
// stderr may split a character), so such bytes become U+FFFD.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace jobd {

std::string storableText(const std::string& bytes);

// A JSON value as the commands and the dashboard print it: "-" for null, a
// string as it is, anything else as JSON.
std::string jsonText(const nlohmann::json& value);

// value as 16 lowercase hex digits, most significant first (random ids:
// OOPS ids, the LISTEN session's probe channel).
std::string hex16(std::uint64_t value);

}  // namespace jobd
