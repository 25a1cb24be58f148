// libFuzzer target: the configuration parser and validator (SPEC §3). Any
// text must either parse or be refused with ConfigInvalid listing its
// problems; nothing else may escape, and nothing may crash or trip ASan or
// UBSan.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.hpp"
#include "config/config_problem.hpp"
#include "registry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto config =
        jobd::config::Config::fromText(text, "fuzz.conf", jobd::jobtypes::handlerCatalog());
    // What the daemon reads next: every section's job source.
    for (const jobd::config::SectionConfig& section : config->sections()) {
      (void)config->sectionForJobType(section.job_type);
    }
  } catch (const jobd::config::ConfigInvalid& e) {
    if (e.problems().empty()) {
      __builtin_trap();  // refused without saying why
    }
  }
  return 0;
}
