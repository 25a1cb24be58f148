#include "command_line.hpp"

#include <algorithm>

#include "core/errors.hpp"

namespace jobd::cli {
namespace {

struct CommandSpec {
  std::string name;
  std::size_t min_args;
  std::size_t max_args;
  std::vector<std::string> value_options;
  std::vector<std::string> flag_options;
  std::string synopsis;
  std::string summary;
};

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> specs = {
      {"serve",
       0,
       1000,
       {},
       {},
       "serve [SECTION...]",
       "run the daemon in the foreground for every enabled section, or those named"},
      {"run-once",
       1,
       1000,
       {},
       {},
       "run-once SECTION...",
       "cron mode: run the jobs of each named section that are ready now, then exit; the exit "
       "status is the number of sections that failed"},
      {"migrate",
       0,
       0,
       {},
       {"--dry-run"},
       "migrate [--dry-run]",
       "create or upgrade the schema; --dry-run prints the SQL"},
      {"enqueue",
       1,
       2,
       {"--at", "--delay", "--priority", "--target", "--max-retries", "--requester", "--depends-on",
        "--on-parent-failure", "--batch"},
       {"--unique"},
       "enqueue TYPE [JSON] [--at TIME] [--delay DUR] [--priority N] [--target KEY] [--unique] "
       "[--max-retries N] [--requester TEXT] [--depends-on ID[,ID...]] [--on-parent-failure "
       "fail|cancel|run] [--batch ID]",
       "insert a job and print its id; with --depends-on it waits until those jobs are "
       "COMPLETED, with --batch it joins an open batch"},
      {"batch",
       1,
       3,
       {"--fire-on"},
       {"--json"},
       "batch create CALLBACK_TYPE [JSON] [--fire-on complete|success] | batch close ID | "
       "batch show ID [--json]",
       "a batch of jobs (enqueue --batch ID): once closed and all its jobs have ended, it "
       "enqueues one CALLBACK_TYPE job with JSON and the counts"},
      {"status",
       0,
       0,
       {},
       {"--json"},
       "status [--json]",
       "per job type: counts, oldest ready job, running jobs, daemons, recent OOPS"},
      {"show", 1, 1, {}, {"--json"}, "show ID [--json]", "one job, its attempts and OOPS reports"},
      {"wait",
       1,
       1,
       {"--timeout"},
       {},
       "wait ID [--timeout DUR]",
       "block until the job is COMPLETED (print its result; exit 0) or FAILED (exit 1), woken at "
       "the commit that finished it; 75 when --timeout passes first"},
      {"oops",
       1,
       1,
       {},
       {"--json"},
       "oops OOPS-ID [--json]",
       "one OOPS report: type, value, traceback and vars"},
      {"retry", 1, 1, {}, {}, "retry ID", "queue a FAILED, COMPLETED or WAITING job to run now"},
      {"suspend", 1, 1, {}, {}, "suspend ID", "suspend a WAITING or RUNNING job"},
      {"resume", 1, 1, {}, {}, "resume ID", "queue a SUSPENDED job again"},
      {"retry-failed",
       1,
       1,
       {"--error-type", "--since", "--limit"},
       {},
       "retry-failed TYPE [--error-type NAME] [--since TIME|DUR] [--limit N]",
       "retry TYPE's FAILED jobs that failed from --since on (default 24h ago), of one error "
       "type if given, oldest first, at most N (default 1000, at most 100000), 500 to a "
       "transaction"},
      {"cancel",
       1,
       1,
       {"--reason"},
       {},
       "cancel ID [--reason TEXT]",
       "fail a WAITING, RUNNING or SUSPENDED job with the reason in its log"},
      {"pause",
       1,
       1,
       {"--target", "--until", "--reason"},
       {"--cancel-running"},
       "pause TYPE [--target KEY] [--until TIME|DUR] [--reason TEXT] [--cancel-running]",
       "stop every daemon claiming TYPE's jobs (or one target's) from now on; running jobs "
       "finish, or with --cancel-running are stopped and wait for the pause's end"},
      {"unpause",
       1,
       1,
       {"--target"},
       {},
       "unpause TYPE [--target KEY]",
       "end a pause: every daemon claims TYPE's jobs (or the target's) again at once"},
      {"schedule",
       1,
       4,
       {"--time-zone", "--payload", "--priority", "--target", "--max-retries", "--catch-up",
        "--catch-up-limit", "--overlap"},
       {"--replace", "--json"},
       "schedule add NAME TYPE 'SPEC' [--time-zone TZ] [--payload JSON] [--priority N] [--target "
       "KEY] [--max-retries N] [--catch-up skip|last|all] [--catch-up-limit N] [--overlap "
       "allow|skip|queue] [--replace]\n  schedule list [--json] | pause NAME | resume NAME | "
       "remove NAME | run-now NAME",
       "durable schedules: SPEC (quoted: the shell expands *) is a cron expression (5 fields, 6 "
       "with seconds first, @daily...) or 'every DUR'; one job per tick across every daemon"},
      {"check-config",
       0,
       0,
       {},
       {},
       "check-config",
       "parse and validate the configuration, print every problem"},
  };
  return specs;
}

const CommandSpec* findCommand(const std::string& name) {
  for (const CommandSpec& c : commands()) {
    if (c.name == name) {
      return &c;
    }
  }
  return nullptr;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

std::optional<std::string> CommandLine::option(const std::string& name) const {
  auto it = options.find(name);
  if (it == options.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::string usageText() {
  std::string text =
      "Usage: jobd [--config FILE] [--database CONNINFO] [-v|-q]... COMMAND [ARGS]\n"
      "\n"
      "Runs background jobs stored in PostgreSQL.\n"
      "\n"
      "Commands:\n";
  for (const CommandSpec& c : commands()) {
    text += "  " + c.synopsis + "\n      " + c.summary + "\n";
  }
  text +=
      "\n"
      "Global options (before or after the command):\n"
      "  --config FILE        configuration file (default $JOBD_CONFIG, else "
      "/etc/jobd/jobd.conf)\n"
      "  --database CONNINFO  overrides [jobd] database\n"
      "  -v, -q               more or less logging (repeatable)\n"
      "  --help, --version\n"
      "\n"
      "Exit status: 0 success, 1 runtime failure, 64 usage error, 65 bad input data,\n"
      "78 invalid configuration.\n";
  return text;
}

std::string commandUsage(const std::string& command) {
  const CommandSpec* spec = findCommand(command);
  return spec ? "Usage: jobd " + spec->synopsis : "Usage: jobd COMMAND [ARGS]";
}

CommandLine parseCommandLine(int argc, const char* const* argv) {
  CommandLine cl;
  std::vector<std::string> args(argv + 1, argv + argc);
  // The command is the first word that is neither an option nor an option's
  // value; global options are recognised everywhere.
  std::vector<std::pair<std::string, std::optional<std::string>>> command_options;
  bool only_positional = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (only_positional || arg.size() < 2 || arg[0] != '-' || (arg[1] >= '0' && arg[1] <= '9')) {
      // A word, including negative numbers such as a --priority value given
      // as its own argument.
      if (cl.command.empty()) {
        cl.command = arg;
      } else {
        cl.positional.push_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    if (arg[1] != '-') {
      // -v, -q, -vv, -vq ...
      for (std::size_t k = 1; k < arg.size(); ++k) {
        if (arg[k] == 'v') {
          ++cl.verbosity;
        } else if (arg[k] == 'q') {
          --cl.verbosity;
        } else if (arg[k] == 'h') {
          cl.help = true;
        } else {
          throw UsageError("unknown option '-" + std::string(1, arg[k]) + "'");
        }
      }
      continue;
    }
    std::optional<std::string> value;
    std::size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    }
    auto takeValue = [&]() -> std::string {
      if (value) {
        return *value;
      }
      if (i + 1 >= args.size()) {
        throw UsageError(arg + " needs a value");
      }
      return args[++i];
    };
    if (arg == "--help") {
      cl.help = true;
    } else if (arg == "--version") {
      cl.version = true;
    } else if (arg == "--config") {
      cl.config_path = takeValue();
    } else if (arg == "--database") {
      cl.database = takeValue();
    } else {
      // A command option: which ones take a value depends on the command,
      // which may come later, so look it up in every command's table.
      bool takes_value = false;
      for (const CommandSpec& c : commands()) {
        takes_value = takes_value || contains(c.value_options, arg);
      }
      command_options.emplace_back(arg, takes_value ? std::optional(takeValue()) : value);
    }
  }
  if (cl.help || (cl.version && cl.command.empty())) {
    return cl;
  }
  if (cl.command.empty()) {
    throw UsageError("no command given");
  }
  const CommandSpec* spec = findCommand(cl.command);
  if (spec == nullptr) {
    throw UsageError("unknown command '" + cl.command + "'");
  }
  for (auto& [name, value] : command_options) {
    if (contains(spec->value_options, name)) {
      cl.options[name] = *value;
    } else if (contains(spec->flag_options, name)) {
      if (value) {
        throw UsageError(cl.command + ": " + name + " takes no value");
      }
      cl.flags.insert(name);
    } else {
      throw UsageError(cl.command + ": unknown option " + name + " (" + commandUsage(cl.command) +
                       ")");
    }
  }
  if (cl.positional.size() < spec->min_args || cl.positional.size() > spec->max_args) {
    throw UsageError(cl.command + ": wrong number of arguments (" + commandUsage(cl.command) + ")");
  }
  return cl;
}

}  // namespace jobd::cli
