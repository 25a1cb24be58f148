// Controller: `jobd serve`. Launches the daemon in numbered steps (sections
// and their sources, the database thread, the worker pool, signals, the
// pre-flight schema check, LISTEN, the first poll, READY), owns the io
// thread's io_context, and stops in order. Signal handlers only record what
// arrived; the loop acts. Runs on the main thread, which becomes the io
// thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "drain.hpp"
#include "reporter.hpp"
#include "runtime/asio.hpp"
#include "runtime/metrics.hpp"
#include "runtime/producer.hpp"
#include "runtime/services.hpp"
#include "section_catalog.hpp"

namespace jobd::cli {

class Controller {
 public:
  // kServe: `jobd serve`. kRunOnce: `jobd run-once` (SPEC §7): no LISTEN,
  // no polling, no rescue; every ready job of the sections runs once, then
  // the run ends.
  enum class Mode { kServe, kRunOnce };

  // sections: the names given on the command line; empty means every
  // enabled section. Throws UsageError for an unknown or disabled name and
  // ConfigError for a section that cannot run here.
  Controller(std::shared_ptr<const config::Config> config, const std::vector<std::string>& sections,
             std::string conninfo, Mode mode = Mode::kServe);
  ~Controller();

  // Runs until a clean stop; returns the exit status.
  int run();
  // After run() in kRunOnce mode: what each section's jobs came to.
  std::map<std::string, runtime::Producer::RunCounts> runCounts() const {
    return services_->producer().runCounts();
  }

 private:
  void onAllStuck(const std::string& what);
  void initSignalHandling();
  void waitForSignal();
  void reload();
  void reloadFailed(const std::string& why);
  void preflight();
  void onListening();
  void onReady();
  void beginDrain();
  void stopLoop();

  std::shared_ptr<const config::Config> config_;
  std::string conninfo_;
  Mode mode_;
  std::string hostname_;
  std::string owner_;

  boost::asio::io_context io_;
  // After io_: process runners hold descriptors of io_.
  std::vector<runtime::ServedSection> sections_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer preflight_timer_;
  SectionCatalog catalog_;
  runtime::Metrics metrics_;
  std::unique_ptr<runtime::Services> services_;
  int preflight_failures_ = 0;
  bool ready_ = false;
  int exit_status_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
  Drain drain_;
  // Last: it reads config_, sections_ and drain_.
  Reporter reporter_;
};

}  // namespace jobd::cli
