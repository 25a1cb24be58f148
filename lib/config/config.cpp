#include "config/config.hpp"

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "config/ini_parser.hpp"
#include "config/value_parsers.hpp"
#include "core/schedule_spec.hpp"

namespace jobd::config {
namespace {

// database_timeout becomes the daemon's statement_timeout, and a job's
// timeout + kill_grace (at most 1 h) + 5 s its idle_in_transaction timeout:
// PostgreSQL takes at most 2^31 - 1 ms (24.8 days) for either.
constexpr Duration kLongestPgTimeout = std::chrono::hours(24 * 20);

// One documented key: its default as written in etc/jobd.conf, and how a
// value is applied to the settings struct T (an error message, or nullopt).
template <class T>
struct Field {
  KeyInfo info;
  std::function<std::optional<std::string>(const std::string&, T&)> apply;
};

template <class T>
using Fields = std::vector<Field<T>>;

template <class T, class V>
auto into(V T::*member, std::function<std::optional<V>(const std::string&, std::string&)> parse) {
  return [member, parse](const std::string& value, T& target) -> std::optional<std::string> {
    std::string error;
    std::optional<V> parsed = parse(value, error);
    if (!parsed) {
      return error;
    }
    target.*member = std::move(*parsed);
    return std::nullopt;
  };
}

const Fields<DaemonSettings>& daemonFields() {
  using D = DaemonSettings;
  static const Fields<D> fields = {
      {{"database", "", "conninfo or URI for claims, leases and outcomes; empty: PG* variables"},
       into<D, std::string>(&D::database, parseConninfo)},
      {{"listen_database", "",
        "conninfo of the LISTEN session (direct, not PgBouncer); empty: database"},
       into<D, std::string>(&D::listen_database, parseConninfo)},
      {{"workers", "8", "worker slots shared by all runner = thread sections"},
       into<D, int>(&D::workers, intBetween(1, 1024))},
      {{"poll_interval", "5s", "safety-net poll of every section (NOTIFY is only a hint)"},
       into<D, Duration>(&D::poll_interval, durationAtLeast(std::chrono::milliseconds(10)))},
      {{"rescue_interval", "15s", "how often RUNNING jobs with expired leases are rescued"},
       into<D, Duration>(&D::rescue_interval, durationAtLeast(std::chrono::milliseconds(100)))},
      {{"clean_interval", "1m",
        "how often finished jobs past keep_finished and OOPS rows past keep_oops are deleted"},
       into<D, Duration>(&D::clean_interval, durationAtLeast(std::chrono::milliseconds(100)))},
      {{"keep_oops", "30d", "OOPS rows older than this are deleted (they outlive their jobs)"},
       into<D, Duration>(&D::keep_oops, durationAtLeast(std::chrono::seconds(1)))},
      {{"drain_timeout", "60s", "on SIGTERM, how long running jobs get to finish"},
       into<D, Duration>(&D::drain_timeout, durationAtLeast(std::chrono::milliseconds(0)))},
      {{"database_timeout", "60s",
        "deadline of each database statement of the daemon's own (at most 20d); past it, plus "
        "1s, a connection that does not answer is closed and reopened"},
       into<D, Duration>(&D::database_timeout,
                         durationBetween(std::chrono::milliseconds(100), kLongestPgTimeout))},
      {{"oops_prefix", "JOBD", "an OOPS reporter is <oops_prefix>-<section>"},
       into<D, std::string>(&D::oops_prefix, parseIdentifier)},
      {{"oops_dir", "",
        "if set, each OOPS is also written as JSON to <oops_dir>/<YYYY-MM-DD>/<id>"},
       into<D, std::string>(&D::oops_dir, parseAbsolutePathOrEmpty)},
      {{"lock_dir", "/run/lock", "where run-once lock files go"},
       into<D, std::string>(&D::lock_dir, parseAbsolutePath)},
      {{"log_level", "info", "trace, debug, info, warning, error, critical or off"},
       into<D, std::string>(&D::log_level, parseLogLevel)},
      {{"log_format", "text",
        "text for a terminal; keyvalue or json: one structured record per line, for journald "
        "and log shippers"},
       into<D, std::string>(&D::log_format, parseLogFormat)},
      {{"metrics_listen", "",
        "host:port for HTTP /metrics and /healthz (no authentication: Prometheus); port 0: any "
        "free one; empty: off"},
       into<D, std::string>(&D::metrics_listen, parseHostPortOrEmpty)},
      {{"dashboard_listen", "",
        "host:port for the dashboard (/, /type/TYPE, /jobs, /search, /job/ID, /oops/ID, /healthz), "
        "which shows payloads and tracebacks; beyond a loopback address it needs "
        "dashboard_password_file; empty: off"},
       into<D, std::string>(&D::dashboard_listen, parseHostPortOrEmpty)},
      {{"dashboard_password_file", "",
        "a file whose first line is the dashboard's password (HTTP Basic, any user name) or "
        "bearer token; read at start; without it the dashboard offers no actions"},
       into<D, std::string>(&D::dashboard_password_file, parseAbsolutePathOrEmpty)},
      {{"dashboard_host", "",
        "comma-separated host names the dashboard answers to (its Host header, a guard against "
        "DNS rebinding); empty: the listen address, localhost, 127.0.0.1 and [::1]"},
       into<D, std::vector<std::string>>(&D::dashboard_hosts, parseHostList)},
      {{"max_payload", "1M",
        "largest json_data a job may carry (bytes of json_data::text), and largest result it may "
        "return"},
       into<D, std::uint64_t>(&D::max_payload, sizeBetween(2, 256ULL * 1024 * 1024))},
  };
  return fields;
}

const Fields<MailSettings>& mailFields() {
  using M = MailSettings;
  static const Fields<M> fields = {
      {{"smtp_url", "smtp://localhost:25", "smtp://, smtp:// with STARTTLS, or smtps:// URL"},
       into<M, std::string>(&M::smtp_url, parseSmtpUrl)},
      {{"from_address", "", "sender of OOPS and user-error notices"},
       into<M, std::string>(&M::from_address, parseAddressOrEmpty)},
      {{"product_name", "jobd", "the name used in notice subjects and bodies"},
       into<M, std::string>(&M::product_name, parseNonEmpty)},
  };
  return fields;
}

const Fields<SectionConfig>& sectionFields() {
  using S = SectionConfig;
  static const Fields<S> fields = {
      {{"handler", "", "which compiled-in handler runs these jobs; default: the section name"},
       into<S, std::string>(&S::handler, parseIdentifier)},
      {{"job_type", "", "the job_type value this section claims; default: the section name"},
       into<S, std::string>(&S::job_type, parseNonEmpty)},
      {{"link", "", "take every key written in that section and not here, except job_type"},
       nullptr},
      {{"dbuser", "", "role for the job's own database work; default: the daemon's role"},
       into<S, std::string>(&S::dbuser, parseIdentifierOrEmpty)},
      {{"concurrency", "1", "most jobs of this section running at once in one daemon"},
       into<S, int>(&S::concurrency, intBetween(1, 10000))},
      {{"lease_duration", "30s", "lease taken at claim and renewed while the job runs"},
       into<S, Duration>(&S::lease_duration, durationAtLeast(std::chrono::seconds(1)))},
      {{"timeout", "5m", "longest a job may run before it is stopped and fails (at most 20d)"},
       into<S, Duration>(&S::timeout,
                         durationBetween(std::chrono::milliseconds(1), kLongestPgTimeout))},
      {{"kill_grace", "5s",
        "after the timeout, SIGTERM to child processes, SIGKILL this much later; a thread "
        "still running then is reported stuck (at most 1h)"},
       into<S, Duration>(&S::kill_grace,
                         durationBetween(std::chrono::milliseconds(0), std::chrono::hours(1)))},
      {{"max_retries", "",
        "if set, overrides the row's max_retries; a job gets max_retries + 1 attempts"},
       into<S, std::optional<int>>(&S::max_retries, optionalIntBetween(0, 1000000))},
      {{"retry_delay", "10m", "delay before a retried attempt"},
       into<S, Duration>(&S::retry_delay, durationAtLeast(std::chrono::milliseconds(0)))},
      {{"retry_backoff", "fixed",
        "fixed, or exponential: retry_delay x 2^(attempt-1), +-10% jitter"},
       into<S, RetryBackoff>(&S::retry_backoff, parseBackoff)},
      {{"retry_delay_max", "1h", "cap of the exponential retry delay"},
       into<S, Duration>(&S::retry_delay_max, durationAtLeast(std::chrono::milliseconds(0)))},
      {{"runner", "thread",
        "thread (the shared worker pool), process (a child per slot, reused after a "
        "success, replaced after a failure) or python (a long-lived Python interpreter per slot "
        "running the module's job classes; handler python)"},
       into<S, RunnerKind>(&S::runner, parseRunner)},
      {{"memory_limit", "",
        "address-space limit of process runners and exec children; empty: none"},
       into<S, std::optional<std::uint64_t>>(&S::memory_limit, optionalSizeAtLeast(16ULL << 20))},
      {{"max_jobs_per_worker", "0",
        "process and python runners: replace a worker after this many jobs; 0: never"},
       into<S, int>(&S::max_jobs_per_worker, intBetween(0, 1000000000))},
      {{"max_worker_rss", "",
        "process and python runners: replace a worker whose resident memory is over this after "
        "a job; empty: never"},
       into<S, std::optional<std::uint64_t>>(&S::max_worker_rss, optionalSizeAtLeast(1ULL << 20))},
      {{"claim_ahead", "0",
        "while a backlog lasts, claim up to this many jobs more than the free slots, sized to "
        "what the slots finish in two claims' time; each holds its lease and attempt from the "
        "claim, waits here for a slot, and is given back after about a second without one; 0: "
        "claim only for free slots. Not with limit_*, fair or priority_ageing"},
       into<S, int>(&S::claim_ahead, intBetween(0, 100000))},
      {{"keep_finished", "30d", "COMPLETED and FAILED jobs older than this are deleted"},
       into<S, Duration>(&S::keep_finished, durationAtLeast(std::chrono::seconds(1)))},
      {{"error_recipients", "", "comma-separated addresses that get this section's OOPS notices"},
       into<S, std::vector<std::string>>(&S::error_recipients, parseAddressList)},
      {{"enabled", "true", "false: the section is validated but never claims"},
       into<S, bool>(&S::enabled, parseBool)},
      {{"limit_key", "type",
        "what the limit_* keys count by, across every daemon: type, target, "
        "target_prefix:SEP (the target up to SEP) or data:FIELD (a json_data field); a job "
        "without a target or field is not limited"},
       into<S, std::string>(&S::limit_key, parseLimitKey)},
      {{"limit_concurrency", "",
        "most jobs of one key running at once across every daemon; empty: no cap"},
       into<S, int>(&S::limit_concurrency, intBetween(1, 1000000))},
      {{"limit_rate", "",
        "most jobs of one key started per period across every daemon, as N/DURATION (100/1s, "
        "10/m); a job held back stays WAITING and spends no attempt; empty: none"},
       [](const std::string& value, S& target) -> std::optional<std::string> {
         std::string error;
         std::optional<RateLimit> rate = parseRateLimit(value, error);
         if (!rate) {
           return error;
         }
         target.limit_rate = rate->count;
         target.limit_rate_period = rate->period;
         return std::nullopt;
       }},
      {{"limit_burst", "",
        "most jobs of one key started at once after a quiet spell; empty: N of limit_rate"},
       into<S, int>(&S::limit_burst, intBetween(1, 1000000))},
      {{"fair", "false",
        "true: jobs of different limit_key keys take this section's slots in turn, so one key's "
        "backlog does not hold up another key's jobs (limit_key must not be type)"},
       into<S, bool>(&S::fair, parseBool)},
      {{"priority_ageing", "",
        "a job that has waited this long is claimed before every job that has not, whatever "
        "their priorities; empty: none"},
       into<S, Duration>(&S::priority_ageing,
                         durationBetween(std::chrono::seconds(1), kLongestPgTimeout))},
      {{"schedule", "",
        "make a job of this section's type per tick: a cron expression (5 fields, 6 with "
        "seconds first, or @hourly, @daily...) or every DUR; the schedule is named after the "
        "section; empty: none"},
       into<S, std::string>(&S::schedule, parseScheduleOrEmpty)},
      {{"schedule_time_zone", "UTC", "IANA time zone of the schedule's cron expression"},
       into<S, std::string>(&S::schedule_time_zone, parseTimeZone)},
      {{"schedule_payload", "{}", "json_data of the jobs the schedule makes (a JSON object)"},
       into<S, std::string>(&S::schedule_payload, parseJsonObject)},
      {{"schedule_catch_up", "last",
        "ticks missed while no daemon ran: skip, last (make the newest) or all (up to "
        "schedule_catch_up_limit)"},
       into<S, std::string>(&S::schedule_catch_up, parseCatchUpName)},
      {{"schedule_catch_up_limit", "100", "most missed ticks that catch_up = all makes"},
       into<S, int>(&S::schedule_catch_up_limit, intBetween(1, 1000))},
      {{"schedule_overlap", "allow",
        "a tick while the schedule's last job is WAITING or RUNNING: allow, skip, or queue "
        "(run after it)"},
       into<S, std::string>(&S::schedule_overlap, parseOverlapName)},
  };
  return fields;
}

template <class T>
const Field<T>* findField(const Fields<T>& fields, const std::string& key) {
  for (const Field<T>& f : fields) {
    if (f.info.name == key) {
      return &f;
    }
  }
  return nullptr;
}

template <class T>
T withDefaults(const Fields<T>& fields) {
  T target{};
  for (const Field<T>& f : fields) {
    if (f.apply && !f.info.default_value.empty()) {
      f.apply(f.info.default_value, target);
    }
  }
  return target;
}

template <class T>
std::vector<KeyInfo> infos(const Fields<T>& fields) {
  std::vector<KeyInfo> out;
  for (const Field<T>& f : fields) {
    out.push_back(f.info);
  }
  return out;
}

std::string knownNames(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& n : names) {
    text += (text.empty() ? "" : ", ") + n;
  }
  return text;
}

// An entry of a job source after link: resolution, with the section it is
// written in (for error locations).
struct ResolvedEntry {
  const IniEntry* entry;
  std::string written_in;
};

}  // namespace

class ConfigBuilder {
 public:
  ConfigBuilder(const IniDocument& doc, const HandlerCatalog& handlers,
                std::vector<ConfigProblem>& problems)
      : doc_(doc), handlers_(handlers), problems_(problems) {}

  std::shared_ptr<Config> build() {
    auto config = std::make_shared<Config>();
    config->origin_ = doc_.origin;
    config->daemon_ = withDefaults(daemonFields());
    config->mail_ = withDefaults(mailFields());
    for (const IniSection& section : doc_.sections) {
      if (section.name == "jobd") {
        applyAll(section, daemonFields(), config->daemon_);
      } else if (section.name == "mail") {
        applyAll(section, mailFields(), config->mail_);
      } else {
        config->sections_.push_back(buildSection(section));
      }
    }
    checkJobTypes(*config);
    checkDashboard(*config);
    return config;
  }

 private:
  void problem(const IniEntry* entry, const std::string& section, const std::string& key,
               std::string message) {
    problems_.push_back({doc_.origin, entry ? entry->line : 0, section, key, std::move(message)});
  }

  template <class T>
  void applyAll(const IniSection& section, const Fields<T>& fields, T& target) {
    for (const IniEntry& e : section.entries) {
      const Field<T>* field = findField(fields, e.key);
      if (field == nullptr) {
        problem(&e, section.name, e.key, "unknown key");
        continue;
      }
      if (auto error = field->apply(e.value, target)) {
        problem(&e, section.name, e.key, *error);
      }
    }
  }

  // Follows link: chains; returns every key visible in section, own keys first.
  std::map<std::string, ResolvedEntry> resolve(const IniSection& section) {
    std::map<std::string, ResolvedEntry> entries;
    for (const IniEntry& e : section.entries) {
      entries.emplace(e.key, ResolvedEntry{&e, section.name});
    }
    std::vector<std::string> chain = {section.name};
    const IniSection* current = &section;
    while (const IniEntry* link = current->find("link")) {
      const IniSection* next = doc_.find(link->value);
      if (link->value == "jobd" || link->value == "mail" || next == nullptr) {
        problem(link, current->name, "link", "'" + link->value + "' is not a job source section");
        break;
      }
      if (std::find(chain.begin(), chain.end(), next->name) != chain.end()) {
        std::string path;
        for (const std::string& name : chain) {
          path += name + " -> ";
        }
        problem(link, current->name, "link", "link cycle: " + path + next->name);
        break;
      }
      chain.push_back(next->name);
      for (const IniEntry& e : next->entries) {
        // A schedule is its section's own: a linked section does not make
        // a second one.
        if (e.key != "job_type" && e.key != "link" && e.key.rfind("schedule", 0) != 0) {
          entries.emplace(e.key, ResolvedEntry{&e, next->name});
        }
      }
      current = next;
    }
    return entries;
  }

  SectionConfig buildSection(const IniSection& section) {
    SectionConfig sc = withDefaults(sectionFields());
    sc.name = section.name;
    sc.handler = section.name;
    sc.job_type = section.name;
    if (const IniEntry* link = section.find("link")) {
      sc.link = link->value;
    }
    std::map<std::string, ResolvedEntry> entries = resolve(section);
    std::vector<std::pair<std::string, ResolvedEntry>> handler_entries;
    for (const auto& [key, resolved] : entries) {
      if (key == "link") {
        continue;
      }
      const Field<SectionConfig>* field = findField(sectionFields(), key);
      if (field == nullptr) {
        handler_entries.emplace_back(key, resolved);
        continue;
      }
      if (auto error = field->apply(resolved.entry->value, sc)) {
        problem(resolved.entry, resolved.written_in, key, *error);
      }
    }
    checkPythonRunner(section, sc, entries);
    checkHandler(section, sc, entries, handler_entries);
    checkSchedule(sc, entries);
    checkLimit(sc, entries);
    return sc;
  }

  // `runner = python` runs the python handler's job classes, and the python
  // handler runs nowhere else; with that runner, handler defaults to python.
  void checkPythonRunner(const IniSection& section, SectionConfig& sc,
                         const std::map<std::string, ResolvedEntry>& entries) {
    auto handler = entries.find("handler");
    bool python_runner = sc.runner == RunnerKind::kPython;
    if (python_runner && handler == entries.end()) {
      sc.handler = "python";
    }
    if (sc.runner == RunnerKind::kThread) {
      for (const char* key : {"max_jobs_per_worker", "max_worker_rss"}) {
        if (auto it = entries.find(key); it != entries.end()) {
          problem(it->second.entry, it->second.written_in, key,
                  "applies only to runner = process or python");
        }
      }
    }
    if (python_runner != (sc.handler == "python")) {
      int line = handler == entries.end() ? section.line : handler->second.entry->line;
      problems_.push_back({doc_.origin, line, section.name, "runner",
                           python_runner
                               ? "runner = python needs handler python, not '" + sc.handler + "'"
                               : "handler python needs runner = python"});
    }
  }

  // limit_key and limit_burst alone limit nothing.
  void checkLimit(SectionConfig& sc, const std::map<std::string, ResolvedEntry>& entries) {
    auto complain = [&](const char* key, const char* message) {
      if (auto it = entries.find(key); it != entries.end()) {
        problem(it->second.entry, it->second.written_in, key, message);
      }
    };
    if (!sc.limited() && !sc.fair) {
      complain("limit_key", "has no effect without limit_concurrency, limit_rate or fair");
    }
    if (sc.fair && sc.limit_key == "type") {
      auto it = entries.find("fair");
      if (it != entries.end()) {
        problem(it->second.entry, it->second.written_in, "fair",
                "needs a limit_key other than type (the keys that take turns)");
      }
    }
    if (sc.claimsByKey() && sc.claim_ahead > 0) {
      complain("claim_ahead",
               "cannot be used with limit_*, fair or priority_ageing: their claims count the "
               "jobs running by key, and a job claimed ahead would hold a turn it does not use");
    }
    if (sc.limit_rate == 0) {
      complain("limit_burst", "has no effect without limit_rate");
    } else if (sc.limit_burst == 0) {
      sc.limit_burst = sc.limit_rate;
    }
  }

  // schedule_* keys need `schedule`, and a schedule must tick again.
  void checkSchedule(const SectionConfig& sc, const std::map<std::string, ResolvedEntry>& entries) {
    for (const auto& [key, resolved] : entries) {
      if (sc.schedule.empty() && key.rfind("schedule_", 0) == 0) {
        problem(resolved.entry, resolved.written_in, key, "has no effect without a schedule key");
      }
    }
    auto spec = entries.find("schedule");
    if (sc.schedule.empty() || spec == entries.end()) {
      return;
    }
    try {
      if (!ScheduleSpec::parse(sc.schedule, sc.schedule_time_zone)
               .nextAfter(date::floor<std::chrono::seconds>(std::chrono::system_clock::now()))) {
        problem(spec->second.entry, spec->second.written_in, "schedule",
                "'" + sc.schedule + "' never ticks again");
      }
    } catch (const std::exception&) {
      // A bad spec or zone is its own key's problem, reported already.
    }
  }

  void checkHandler(const IniSection& section, SectionConfig& sc,
                    const std::map<std::string, ResolvedEntry>& entries,
                    const std::vector<std::pair<std::string, ResolvedEntry>>& handler_entries) {
    const HandlerDescriptor* handler = nullptr;
    std::vector<std::string> names;
    for (const HandlerDescriptor& h : handlers_) {
      names.push_back(h.name);
      if (h.name == sc.handler) {
        handler = &h;
      }
    }
    if (handler == nullptr) {
      auto it = entries.find("handler");
      const IniEntry* where = it == entries.end() ? nullptr : it->second.entry;
      int line = where ? where->line : section.line;
      problems_.push_back(
          {doc_.origin, line, section.name, "handler",
           "unknown handler '" + sc.handler + "' (known: " + knownNames(names) + ")"});
      for (const auto& [key, resolved] : handler_entries) {
        problem(resolved.entry, resolved.written_in, key, "unknown key");
      }
      return;
    }
    for (const auto& [key, resolved] : handler_entries) {
      const HandlerKey* hk = handler->findKey(key);
      if (hk == nullptr) {
        problem(resolved.entry, resolved.written_in, key,
                "unknown key (not a section key, nor one of handler " + handler->name + "'s)");
        continue;
      }
      if (hk->validate) {
        if (auto error = hk->validate(resolved.entry->value)) {
          problem(resolved.entry, resolved.written_in, key, *error);
          continue;
        }
      }
      sc.handler_options[key] = resolved.entry->value;
    }
    for (const HandlerKey& hk : handler->keys) {
      if (hk.required && entries.find(hk.name) == entries.end()) {
        problems_.push_back({doc_.origin, section.line, section.name, hk.name,
                             "missing, handler " + handler->name + " needs it"});
      }
    }
  }

  // The dashboard shows payloads and tracebacks: beyond a loopback
  // address it must ask for a password.
  void checkDashboard(const Config& config) {
    const DaemonSettings& d = config.daemon();
    if (d.dashboard_listen.empty() || !d.dashboard_password_file.empty() ||
        isLoopbackListen(d.dashboard_listen)) {
      return;
    }
    const IniSection* section = doc_.find("jobd");
    const IniEntry* entry = section ? section->find("dashboard_listen") : nullptr;
    problems_.push_back({doc_.origin, entry ? entry->line : 0, "jobd", "dashboard_listen",
                         "listens beyond a loopback address: set dashboard_password_file too"});
  }

  void checkJobTypes(const Config& config) {
    std::map<std::string, std::string> claimed;
    for (const SectionConfig& sc : config.sections()) {
      if (!sc.enabled) {
        continue;
      }
      auto [it, inserted] = claimed.emplace(sc.job_type, sc.name);
      if (!inserted) {
        const IniSection* section = doc_.find(sc.name);
        const IniEntry* entry = section ? section->find("job_type") : nullptr;
        problems_.push_back(
            {doc_.origin, entry ? entry->line : (section ? section->line : 0), sc.name, "job_type",
             "job type '" + sc.job_type + "' is already claimed by section [" + it->second + "]"});
      }
    }
  }

  const IniDocument& doc_;
  const HandlerCatalog& handlers_;
  std::vector<ConfigProblem>& problems_;
};

std::shared_ptr<const Config> Config::fromText(const std::string& text, const std::string& origin,
                                               const HandlerCatalog& handlers) {
  std::vector<ConfigProblem> problems;
  IniDocument doc = parseIni(text, origin, problems);
  std::shared_ptr<Config> config = ConfigBuilder(doc, handlers, problems).build();
  if (!problems.empty()) {
    std::stable_sort(
        problems.begin(), problems.end(),
        [](const ConfigProblem& a, const ConfigProblem& b) { return a.line < b.line; });
    throw ConfigInvalid(std::move(problems));
  }
  return config;
}

std::shared_ptr<const Config> Config::fromFile(const std::string& path,
                                               const HandlerCatalog& handlers) {
  std::ifstream in(path);
  if (!in) {
    throw ConfigInvalid({{path, 0, "", "", "cannot read the configuration file"}});
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw ConfigInvalid({{path, 0, "", "", "error while reading the configuration file"}});
  }
  return fromText(text.str(), path, handlers);
}

std::shared_ptr<const Config> Config::defaults() {
  auto config = std::make_shared<Config>();
  config->origin_ = "(defaults)";
  config->daemon_ = withDefaults(daemonFields());
  config->mail_ = withDefaults(mailFields());
  return config;
}

const SectionConfig* Config::section(const std::string& name) const {
  for (const SectionConfig& s : sections_) {
    if (s.name == name) {
      return &s;
    }
  }
  return nullptr;
}

const SectionConfig* Config::sectionForJobType(const std::string& job_type) const {
  for (const SectionConfig& s : sections_) {
    if (s.enabled && s.job_type == job_type) {
      return &s;
    }
  }
  return nullptr;
}

const std::vector<KeyInfo>& Config::daemonKeys() {
  static const std::vector<KeyInfo> keys = infos(daemonFields());
  return keys;
}

const std::vector<KeyInfo>& Config::mailKeys() {
  static const std::vector<KeyInfo> keys = infos(mailFields());
  return keys;
}

const std::vector<KeyInfo>& Config::sectionKeys() {
  static const std::vector<KeyInfo> keys = infos(sectionFields());
  return keys;
}

std::vector<std::string> restartOnlyChanges(const DaemonSettings& was, const DaemonSettings& now) {
  std::vector<std::string> changed;
  for (const auto& [key, differs] :
       {std::pair<const char*, bool>{"database", was.database != now.database},
        {"listen_database", was.listen_database != now.listen_database},
        {"database_timeout", was.database_timeout != now.database_timeout},
        {"metrics_listen", was.metrics_listen != now.metrics_listen},
        {"dashboard_listen", was.dashboard_listen != now.dashboard_listen},
        {"dashboard_password_file", was.dashboard_password_file != now.dashboard_password_file},
        {"dashboard_host", was.dashboard_hosts != now.dashboard_hosts}}) {
    if (differs) {
      changed.emplace_back(key);
    }
  }
  return changed;
}

}  // namespace jobd::config
