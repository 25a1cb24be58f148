// The command line of `jobd` (SPEC §2): global options accepted before or
// after the command, the command, its positional arguments and options.
// Parsed once by main() on the main thread.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace jobd::cli {

struct CommandLine {
  std::optional<std::string> config_path;  // --config
  std::optional<std::string> database;     // --database
  int verbosity = 0;                       // +1 per -v, -1 per -q
  bool help = false;
  bool version = false;

  std::string command;  // empty with --help/--version alone
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // "--at" -> "2026-..."
  std::set<std::string> flags;                 // "--json", "--unique"

  bool flag(const std::string& name) const { return flags.count(name) > 0; }
  std::optional<std::string> option(const std::string& name) const;
};

// Throws UsageError naming the problem.
CommandLine parseCommandLine(int argc, const char* const* argv);

// The text of `jobd --help`.
std::string usageText();

// "Usage: jobd enqueue TYPE [JSON] [--at TIME] ...", for one command.
std::string commandUsage(const std::string& command);

}  // namespace jobd::cli
