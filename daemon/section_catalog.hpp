// SectionCatalog: the sections `jobd serve` and `jobd run-once` serve (those
// named on the command line, or every enabled one), each with its job
// source and, for `runner = process`, its process runner, which is kept
// across reloads (its workers keep running) and reconfigured.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "runtime/asio.hpp"
#include "runtime/process_runner.hpp"
#include "runtime/producer.hpp"

namespace jobd::cli {

// A separate listen_database is SPEC's sign that `database` may be
// PgBouncer in transaction pooling mode: then no session settings, in the
// daemon or in its process runners.
bool mayBePooled(const config::Config& config, const std::string& conninfo);

class SectionCatalog {
 public:
  SectionCatalog(boost::asio::io_context& io, std::vector<std::string> names,
                 const std::string& conninfo, const std::string& owner)
      : io_(io), names_(std::move(names)), conninfo_(conninfo), owner_(owner) {}

  // The sections to serve under `config`, with their sources and runners.
  // At start (reloading false) a missing or disabled name is a
  // UsageError; on reload it is skipped with a warning. Throws
  // ConfigError, before anything is applied, when no section is left or
  // one cannot run here.
  std::vector<runtime::ServedSection> serve(const config::Config& config, bool reloading) {
    return served(config, chosen(config, reloading));
  }

 private:
  std::vector<const config::SectionConfig*> chosen(const config::Config& config,
                                                   bool reloading) const;
  std::vector<runtime::ServedSection> served(
      const config::Config& config, const std::vector<const config::SectionConfig*>& chosen);

  boost::asio::io_context& io_;
  std::vector<std::string> names_;  // the sections named on the command line
  const std::string& conninfo_;
  const std::string& owner_;
  // Process runners by section, kept across reloads.
  std::map<std::string, std::shared_ptr<runtime::ProcessRunner>> runners_;
};

}  // namespace jobd::cli
