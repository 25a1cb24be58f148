// The Producer's sections (runtime/producer.hpp): which are served, how a
// reload changes them, and what they hold for the metrics and reports.
#include <limits>
#include <set>
#include <utility>

#include "runtime/producer.hpp"

namespace jobd::runtime {

void Producer::serve(ServedSection served) {
  std::unique_ptr<Section>& slot = sections_[served.name];
  if (!slot) {
    slot =
        std::make_unique<Section>(io_, [this, name = served.name] { claim(*sections_.at(name)); });
  }
  Section& section = *slot;
  if (section.config != nullptr) {
    auto it = by_job_type_.find(section.config->job_type);
    if (it != by_job_type_.end() && it->second == &section) {
      by_job_type_.erase(it);
    }
    section.wakeUp(sleeper_);  // its type may change: the next short claim sleeps again
  }
  section.config = config_->section(served.name);
  section.snapshot = config_;
  section.served = std::move(served);
  section.retired = false;
  by_job_type_[section.config->job_type] = &section;
  // A limit this type had (here or in a daemon of the fleet that was
  // reconfigured) parked jobs that the common claim does not see: the next
  // claim gives them back first.
  section.release_throttled = !section.config->claimsByKey();
}

void Producer::reconfigure(std::shared_ptr<const config::Config> config,
                           std::vector<ServedSection> sections, boost::asio::thread_pool& pool) {
  config_ = std::move(config);
  supervisor_.reconfigure(pool, config_->daemon().workers);
  std::set<std::string> names;
  for (ServedSection& served : sections) {
    names.insert(served.name);
    serve(std::move(served));
  }
  for (auto& [name, section] : sections_) {
    if (names.count(name) != 0 || section->retired) {
      continue;
    }
    // No longer served: its running jobs finish; it claims nothing more,
    // and what it claimed ahead goes back.
    section->retired = true;
    claimed_ahead_.releaseAll(*section, kRetiredRelease);
    section->cancelWake();
    section->wakeUp(sleeper_);
    auto it = by_job_type_.find(section->config->job_type);
    if (it != by_job_type_.end() && it->second == section.get()) {
      by_job_type_.erase(it);
    }
    if (section->served.runner) {
      section->served.runner->shutdown();
    }
  }
  for (auto& [name, section] : sections_) {
    startQueued(*section);  // into the slots a reload may have added
  }
  retryConnectsNow();  // a reload may have fixed a dbuser
}

std::map<std::string, Producer::RunCounts> Producer::runCounts() const {
  std::map<std::string, RunCounts> counts;
  for (const auto& [name, section] : sections_) {
    counts[name] = section->counts;
  }
  return counts;
}

int Producer::slots() const {
  int slots = config_->daemon().workers;
  for (const auto& [name, section] : sections_) {
    if (section->served.runner && !section->retired) {
      slots += section->config->concurrency;
    }
  }
  return slots;
}

std::map<std::string, int> Producer::runningByJobType() const {
  std::map<std::string, int> running;
  for (const auto& [name, section] : sections_) {
    if (!section->retired) {
      running[section->config->job_type];  // a served type shows 0, not nothing
    }
  }
  for (const auto& [job_type, n] : supervisor_.runningByJobType()) {
    running[job_type] += n;
  }
  return running;
}

}  // namespace jobd::runtime
