// Helpers for binding parameters with libpqxx 6.4, which has no traits for
// std::optional: a null const char* binds SQL NULL. Header-only, any thread.
#pragma once

#include <optional>
#include <string>

namespace jobd::store {

inline const char* nullable(const std::optional<std::string>& value) {
  return value ? value->c_str() : nullptr;
}

}  // namespace jobd::store
