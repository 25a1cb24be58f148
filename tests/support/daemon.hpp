// Daemon: a `jobd serve` process for integration tests, run against a
// TestDatabase with a configuration written for the test. Readiness and
// events are read from its log lines (DAEMON_READY, JOB_FINISHED ...) as
// they arrive. Owned by one test thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "process.hpp"
#include "test_database.hpp"

namespace jobd::testing {

class Daemon {
 public:
  Daemon(const TestDatabase& db, const std::string& config_text,
         const std::vector<std::string>& sections = {},
         const std::map<std::string, std::string>& env = {});

  // Whether DAEMON_READY appeared within the timeout; on failure, adds the
  // daemon's log to the test's failure message. Use as ASSERT_TRUE(d.waitReady()).
  bool waitReady(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  bool waitForLog(const std::string& needle,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return process_->waitForOutput(needle, timeout);
  }
  std::string log() { return process_->errSoFar(); }
  // SIGTERM, then the exit status and the whole log.
  ProcessResult stop(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  Process& process() { return *process_; }
  // The configuration file, for a test that rewrites it and sends SIGHUP.
  const std::string& configPath() const { return config_path_; }

 private:
  std::string config_path_;
  std::unique_ptr<Process> process_;
};

// Runs `SELECT (<sql>)::text` every 20 ms until it returns expected or the
// timeout passes; returns the last value. For conditions no log line marks,
// such as "every job is finished" across several daemons.
std::string waitForValue(const TestDatabase& db, const std::string& sql,
                         const std::string& expected,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace jobd::testing
