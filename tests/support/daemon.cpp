#include "daemon.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>

namespace jobd::testing {

Daemon::Daemon(const TestDatabase& db, const std::string& config_text,
               const std::vector<std::string>& sections,
               const std::map<std::string, std::string>& env) {
  static std::atomic<int> counter{0};
  config_path_ =
      ::testing::TempDir() + "jobd_" + db.name() + "_" + std::to_string(counter++) + ".conf";
  std::ofstream(config_path_) << config_text;
  std::vector<std::string> argv = {jobdBinary(), "--config",    config_path_,
                                   "--database", db.conninfo(), "serve"};
  argv.insert(argv.end(), sections.begin(), sections.end());
  ProcessOptions options;
  options.env = env;
  process_ = std::make_unique<Process>(argv, options);
}

bool Daemon::waitReady(std::chrono::milliseconds timeout) {
  if (process_->waitForOutput("DAEMON_READY", timeout)) {
    return true;
  }
  ADD_FAILURE() << "the daemon did not become ready; its log:\n" << process_->errSoFar();
  return false;
}

ProcessResult Daemon::stop(std::chrono::milliseconds timeout) {
  process_->signal(SIGTERM);
  return process_->wait(timeout);
}

std::string waitForValue(const TestDatabase& db, const std::string& sql,
                         const std::string& expected, std::chrono::milliseconds timeout) {
  auto conn = db.connect();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string value;
  for (;;) {
    pqxx::nontransaction q(*conn);
    pqxx::result r = q.exec("SELECT (" + sql + ")::text");
    value = r[0][0].is_null() ? "" : r[0][0].c_str();
    if (value == expected || std::chrono::steady_clock::now() > deadline) {
      return value;
    }
    q.exec("SELECT pg_sleep(0.02)");
  }
}

}  // namespace jobd::testing
