#include "commands.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "config/config_problem.hpp"
#include "controller.hpp"
#include "core/errors.hpp"
#include "core/log.hpp"
#include "logging.hpp"
#include "registry.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"

namespace jobd::cli {
namespace {

constexpr const char* kDefaultConfigPath = "/etc/jobd/jobd.conf";

}  // namespace

std::shared_ptr<const config::Config> loadConfig(const CommandLine& cl) {
  std::string path;
  if (cl.config_path) {
    path = *cl.config_path;
  } else if (const char* env = std::getenv("JOBD_CONFIG"); env != nullptr && *env != '\0') {
    path = env;
  } else {
    path = kDefaultConfigPath;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return config::Config::defaults();
    }
  }
  return config::Config::fromFile(path, jobtypes::handlerCatalog());
}

std::string databaseConninfo(const CommandLine& cl, const config::Config& config) {
  return cl.database ? *cl.database : config.daemon().database;
}

int cmdMigrate(const CommandLine& cl) {
  auto config = loadConfig(cl);
  // A migration holds a session lock and runs statements outside any
  // transaction: it needs a session of its own, which `listen_database`
  // (PostgreSQL itself when `database` is PgBouncer) gives.
  std::string conninfo = cl.database ? *cl.database
                         : !config->daemon().listen_database.empty()
                             ? config->daemon().listen_database
                             : config->daemon().database;
  auto conn = store::connect(conninfo, "jobd migrate");
  store::Migrator migrator(*conn);
  if (cl.flag("--dry-run")) {
    auto pending = migrator.pending();
    if (pending.empty()) {
      std::cout << "-- the schema is at version " << store::requiredSchemaVersion()
                << "; nothing to apply\n";
    }
    for (const store::Migration* m : pending) {
      std::cout << migrator.script(*m) << "\n";
    }
    return 0;
  }
  store::MigrationResult result = migrator.migrate();
  if (result.applied.empty()) {
    std::cout << "schema is at version " << result.to << "; nothing to do\n";
  } else {
    std::cout << "migrated schema from version " << result.from << " to " << result.to << "\n";
  }
  return 0;
}

int cmdCheckConfig(const CommandLine& cl) {
  CommandLine strict = cl;
  if (!strict.config_path) {
    const char* env = std::getenv("JOBD_CONFIG");
    strict.config_path = (env != nullptr && *env != '\0') ? env : kDefaultConfigPath;
  }
  try {
    auto config = loadConfig(strict);
    std::cout << config->origin() << ": OK, " << config->sections().size() << " job source"
              << (config->sections().size() == 1 ? "" : "s");
    const char* separator = ": ";
    for (const auto& section : config->sections()) {
      std::cout << separator << section.name << (section.enabled ? "" : " (disabled)");
      separator = ", ";
    }
    std::cout << "\n";
    return 0;
  } catch (const config::ConfigInvalid& e) {
    for (const config::ConfigProblem& p : e.problems()) {
      std::cerr << p.describe() << "\n";
    }
    return 78;
  }
}

int cmdServe(const CommandLine& cl) {
  auto config = loadConfig(cl);
  setupLogging(config->daemon().log_level, cl.verbosity, true, config->daemon().log_format);
  Controller controller(config, cl.positional, databaseConninfo(cl, *config));
  return controller.run();
}

// Launchpad's process-job-source.py (SPEC §7): a lock file per section,
// every ready job of the unlocked sections run once, and the number of
// sections that failed as the exit status.
int cmdRunOnce(const CommandLine& cl) {
  auto config = loadConfig(cl);
  setupLogging(config->daemon().log_level, cl.verbosity, true, config->daemon().log_format);
  int failed = 0;
  std::vector<std::string> runnable;
  std::vector<int> locks;  // held until exit
  for (const std::string& name : cl.positional) {
    const config::SectionConfig* section = config->section(name);
    if (section == nullptr || !section->enabled) {
      logs::error("No enabled section [{}] in {}", name, config->origin());
      ++failed;
      continue;
    }
    std::string path = config->daemon().lock_dir + "/jobd-" + name + ".lock";
    logs::info("Creating lockfile: {}", path);
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      logs::error("Cannot open lockfile {}: {}", path, std::strerror(errno));
      ++failed;
      continue;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      logs::info("Lockfile {} in use", path);
      close(fd);
      ++failed;
      continue;
    }
    locks.push_back(fd);
    runnable.push_back(name);
  }
  if (!runnable.empty()) {
    Controller controller(config, runnable, databaseConninfo(cl, *config),
                          Controller::Mode::kRunOnce);
    if (controller.run() != 0) {
      failed += static_cast<int>(runnable.size());
    } else {
      auto counts = controller.runCounts();
      for (const std::string& name : runnable) {
        const runtime::Producer::RunCounts& c = counts[name];
        if (c.completed > 0) {
          logs::info("Ran {} {} jobs.", c.completed, name);
        }
        if (c.incomplete > 0) {
          logs::info("{} {} jobs did not complete.", c.incomplete, name);
        }
      }
    }
  }
  for (int fd : locks) {
    close(fd);
  }
  if (failed > 0) {
    logs::info("{} job sources failed.", failed);
  }
  return std::min(failed, 63);
}

int runCommand(const CommandLine& cl) {
  if (cl.command == "serve") {
    return cmdServe(cl);
  }
  if (cl.command == "run-once") {
    return cmdRunOnce(cl);
  }
  if (cl.command == "migrate") {
    return cmdMigrate(cl);
  }
  if (cl.command == "check-config") {
    return cmdCheckConfig(cl);
  }
  if (cl.command == "enqueue") {
    return cmdEnqueue(cl);
  }
  if (cl.command == "status") {
    return cmdStatus(cl);
  }
  if (cl.command == "show") {
    return cmdShow(cl);
  }
  if (cl.command == "oops") {
    return cmdOops(cl);
  }
  if (cl.command == "retry" || cl.command == "suspend" || cl.command == "resume" ||
      cl.command == "cancel") {
    return cmdOperator(cl);
  }
  if (cl.command == "retry-failed") {
    return cmdRetryFailed(cl);
  }
  if (cl.command == "pause") {
    return cmdPause(cl);
  }
  if (cl.command == "unpause") {
    return cmdUnpause(cl);
  }
  if (cl.command == "wait") {
    return cmdWait(cl);
  }
  if (cl.command == "schedule") {
    return cmdSchedule(cl);
  }
  if (cl.command == "batch") {
    return cmdBatch(cl);
  }
  throw UsageError("unknown command '" + cl.command + "'");
}

}  // namespace jobd::cli
