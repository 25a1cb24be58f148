#include "section_catalog.hpp"

#include "core/errors.hpp"
#include "core/log.hpp"
#include "registry.hpp"

namespace jobd::cli {

bool mayBePooled(const config::Config& config, const std::string& conninfo) {
  return !config.daemon().listen_database.empty() && config.daemon().listen_database != conninfo;
}

// The sections to serve: those named, or every enabled one. At start a
// missing or disabled name is a usage error; on reload it is skipped.
std::vector<const config::SectionConfig*> SectionCatalog::chosen(const config::Config& config,
                                                                 bool reloading) const {
  std::vector<const config::SectionConfig*> chosen;
  for (const std::string& name : names_) {
    const config::SectionConfig* section = config.section(name);
    std::string problem;
    if (section == nullptr) {
      problem = "no section [" + name + "] in " + config.origin();
    } else if (!section->enabled) {
      problem = "section [" + name + "] is disabled in " + config.origin();
    }
    if (problem.empty()) {
      chosen.push_back(section);
    } else if (reloading) {
      logs::warn("RELOAD_SECTION_GONE {}: no longer served", problem);
    } else {
      throw UsageError("serve: " + problem);
    }
  }
  if (names_.empty()) {
    for (const config::SectionConfig& section : config.sections()) {
      if (section.enabled) {
        chosen.push_back(&section);
      }
    }
  }
  if (chosen.empty()) {
    throw ConfigError(config.origin() + ": no enabled job source section to serve");
  }
  return chosen;
}

// Job sources (and process runners) for the chosen sections; throws
// ConfigError before anything is applied when one cannot run here.
std::vector<runtime::ServedSection> SectionCatalog::served(
    const config::Config& config, const std::vector<const config::SectionConfig*>& chosen) {
  std::vector<runtime::ServedSection> served;
  served.reserve(chosen.size());
  for (const config::SectionConfig* section : chosen) {
    served.push_back({section->name, jobtypes::makeJobSource(*section, config.mail()), nullptr});
  }
  for (runtime::ServedSection& one : served) {
    const config::SectionConfig* section = config.section(one.name);
    if (section->runner == config::RunnerKind::kThread) {
      continue;
    }
    runtime::ProcessRunner::Options options{*section,  config.mail(),
                                            conninfo_, mayBePooled(config, conninfo_),
                                            owner_,    config.daemon().log_level};
    std::shared_ptr<runtime::ProcessRunner>& runner = runners_[one.name];
    if (runner) {
      runner->reconfigure(std::move(options));
    } else {
      runner = std::make_shared<runtime::ProcessRunner>(io_, std::move(options));
    }
    one.runner = runner;
  }
  return served;
}

}  // namespace jobd::cli
