// Helpers for binding parameters with libpqxx 6.4, which has no traits for
// std::optional: a null const char* binds SQL NULL. Header-only, any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace jobd::store {

inline const char* nullable(const std::optional<std::string>& value) {
  return value ? value->c_str() : nullptr;
}

template <class T>
std::string pgArray(const std::vector<T>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += (i ? "," : "") + std::to_string(values[i]);
  }
  return out + "}";
}

// A text[] literal; every element quoted, since job types and section
// names are free text.
inline std::string pgTextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += i ? ",\"" : "\"";
    for (char c : values[i]) {
      if (c == '"' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace jobd::store
