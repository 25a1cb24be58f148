// The CLI's commands, one function each, dispatched by runCommand(). Each
// returns its exit status or throws a jobd::Error that main() maps to one.
// Main thread only.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>

#include "command_line.hpp"
#include "config/config.hpp"

namespace jobd::cli {

int runCommand(const CommandLine& cl);

// The configuration the command line names: --config, else $JOBD_CONFIG,
// else /etc/jobd/jobd.conf. A file named by --config or $JOBD_CONFIG must
// exist; the default path may be absent, and then every default applies.
// --database overrides [jobd] database. Throws ConfigInvalid.
std::shared_ptr<const config::Config> loadConfig(const CommandLine& cl);

// The conninfo commands connect with: --database, else [jobd] database.
std::string databaseConninfo(const CommandLine& cl, const config::Config& config);

// Connects and checks that the schema is the one this binary knows.
std::unique_ptr<pqxx::connection> connectChecked(const CommandLine& cl,
                                                 const config::Config& config);
// A whole number from min to max, or a UsageError naming `what`.
long long parseInteger(const std::string& what, const std::string& text, long long min,
                       long long max);
// Who ran the command: the operator's login (the sudoer's under sudo) and
// host, and the command ("alice@web1 (jobd pause)").
std::string operatorName(const std::string& command);
// A JSON value as a command prints it: "-" for null, a string as it is,
// anything else as JSON.
std::string text(const nlohmann::json& value);

int cmdMigrate(const CommandLine& cl);
int cmdCheckConfig(const CommandLine& cl);
int cmdEnqueue(const CommandLine& cl);
int cmdStatus(const CommandLine& cl);
int cmdShow(const CommandLine& cl);
int cmdOops(const CommandLine& cl);
int cmdOperator(const CommandLine& cl);
int cmdRetryFailed(const CommandLine& cl);
int cmdPause(const CommandLine& cl);
int cmdUnpause(const CommandLine& cl);
int cmdSchedule(const CommandLine& cl);
int cmdBatch(const CommandLine& cl);
int cmdWait(const CommandLine& cl);
int cmdServe(const CommandLine& cl);
int cmdRunOnce(const CommandLine& cl);

}  // namespace jobd::cli
