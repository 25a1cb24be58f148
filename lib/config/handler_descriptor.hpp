// HandlerDescriptor: what the configuration needs to know of a compiled-in
// handler: its name, its own keys and how to check their values. The
// registry in jobtypes/ provides one per handler; Config validates sections
// against them. Immutable after construction; shared across threads.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace jobd::config {

struct HandlerKey {
  std::string name;
  bool required = false;
  std::string default_value;  // shown in etc/jobd.conf; empty when none
  std::string comment;
  // Returns an error message for a bad value, nullopt when it is fine.
  std::function<std::optional<std::string>(const std::string&)> validate;
};

struct HandlerDescriptor {
  std::string name;
  std::string summary;
  std::vector<HandlerKey> keys;

  const HandlerKey* findKey(const std::string& key) const {
    for (const HandlerKey& k : keys) {
      if (k.name == key) {
        return &k;
      }
    }
    return nullptr;
  }
};

using HandlerCatalog = std::vector<HandlerDescriptor>;

}  // namespace jobd::config
