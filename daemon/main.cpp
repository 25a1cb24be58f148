// jobd's entry point: parse the command line, hand over to the command, and
// map exception types to exit statuses (SPEC §2). Nothing else.
#include <csignal>
#include <iostream>
#include <pqxx/pqxx>

#include "command_line.hpp"
#include "commands.hpp"
#include "config/config_problem.hpp"
#include "core/errors.hpp"
#include "logging.hpp"
#include "runtime/worker_protocol.hpp"
#include "worker.hpp"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 64;
constexpr int kExitDataErr = 65;
constexpr int kExitConfig = 78;

int fail(int status, const std::string& message) {
  std::cerr << "jobd: " << message << "\n";
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  // A write to a pipe whose reader is gone (an `exec` child that exits
  // without reading its stdin) must fail with EPIPE, not kill the daemon.
  // Children set SIGPIPE back to its default before exec.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    if (argc == 2 && std::string(argv[1]) == jobd::runtime::worker::kCommand) {
      return jobd::cli::runWorker();
    }
    jobd::cli::CommandLine cl = jobd::cli::parseCommandLine(argc, argv);
    if (cl.help) {
      std::cout << jobd::cli::usageText();
      return 0;
    }
    if (cl.version) {
      std::cout << "jobd " << JOBD_VERSION << "\n";
      return 0;
    }
    jobd::cli::setupLogging("info", cl.verbosity);
    return jobd::cli::runCommand(cl);
  } catch (const jobd::UsageError& e) {
    return fail(kExitUsage, std::string(e.what()) + " (try jobd --help)");
  } catch (const jobd::DataError& e) {
    return fail(kExitDataErr, e.what());
  } catch (const jobd::ConfigError& e) {
    return fail(kExitConfig, e.what());
  } catch (const jobd::Error& e) {
    return fail(kExitFailure, e.what());
  } catch (const pqxx::broken_connection& e) {
    return fail(kExitFailure, "lost the database connection: " + jobd::errorLine(e.what()));
  } catch (const pqxx::sql_error& e) {
    return fail(kExitFailure,
                "database error (SQLSTATE " + e.sqlstate() + "): " + jobd::errorLine(e.what()));
  } catch (const std::exception& e) {
    return fail(kExitFailure, jobd::errorLine(e.what()));
  }
}
