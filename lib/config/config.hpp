// Config: the immutable snapshot of a validated configuration file (SPEC §3).
// Loaded by the CLI and, later, by the daemon's controller, which swaps a new
// snapshot in on SIGHUP; readers hold a shared_ptr<const Config>, so a
// snapshot can be read from any thread while another replaces it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config_problem.hpp"
#include "config/handler_descriptor.hpp"
#include "core/duration.hpp"

namespace jobd::config {

enum class RunnerKind { kThread, kProcess, kPython };
enum class RetryBackoff { kFixed, kExponential };

// [jobd]
struct DaemonSettings {
  std::string database;         // empty: libpq defaults (PG* variables)
  std::string listen_database;  // empty: same as database
  int workers = 8;
  Duration poll_interval = std::chrono::seconds(5);
  Duration rescue_interval = std::chrono::seconds(15);
  Duration clean_interval = std::chrono::minutes(1);
  Duration keep_oops = std::chrono::hours(24 * 30);
  Duration drain_timeout = std::chrono::seconds(60);
  Duration database_timeout = std::chrono::seconds(60);
  std::string oops_prefix = "JOBD";
  std::string oops_dir;  // empty: OOPS reports only in the database
  std::string lock_dir = "/run/lock";
  std::string log_level = "info";
  std::string log_format = "text";           // text, keyvalue or json
  std::string metrics_listen;                // empty: no HTTP listener
  std::string dashboard_listen;              // empty: no dashboard
  std::string dashboard_password_file;       // empty: no authentication (loopback only)
  std::vector<std::string> dashboard_hosts;  // Host names it answers to; empty: its own
  std::uint64_t max_payload = 1024ULL * 1024;
};

// [mail]
struct MailSettings {
  std::string smtp_url = "smtp://localhost:25";
  std::string from_address;
  std::string product_name = "jobd";
};

// One [<section>]: a job source.
struct SectionConfig {
  std::string name;
  std::string handler;
  std::string job_type;
  std::string link;  // the section it took keys from, or empty
  std::string dbuser;
  int concurrency = 1;
  Duration lease_duration = std::chrono::seconds(30);
  Duration timeout = std::chrono::minutes(5);
  Duration kill_grace = std::chrono::seconds(5);
  std::optional<int> max_retries;  // nullopt: the row's value
  Duration retry_delay = std::chrono::minutes(10);
  RetryBackoff retry_backoff = RetryBackoff::kFixed;
  Duration retry_delay_max = std::chrono::hours(1);
  RunnerKind runner = RunnerKind::kThread;
  std::optional<std::uint64_t> memory_limit;
  // The most jobs claimed ahead of free slots, queued here until one frees
  // (runtime/claimed_ahead.hpp); 0: claims never exceed the free slots.
  int claim_ahead = 0;
  // Process and python runners: a worker is replaced after this many jobs
  // (0: never), or after a job that left its resident memory over the bound.
  int max_jobs_per_worker = 0;
  std::optional<std::uint64_t> max_worker_rss;
  Duration keep_finished = std::chrono::hours(24 * 30);
  std::vector<std::string> error_recipients;
  bool enabled = true;
  // A schedule of this section's job type, named after the section (issue
  // 19): a cron expression or "every DUR"; empty: none.
  std::string schedule;
  std::string schedule_time_zone = "UTC";
  std::string schedule_payload = "{}";
  std::string schedule_catch_up = "last";
  int schedule_catch_up_limit = 100;
  std::string schedule_overlap = "allow";
  // A fleet-wide limit on this section's jobs by key (issue 21; README,
  // "Limits"): what a key is ("type", "target", "target_prefix:SEP" or
  // "data:FIELD"), the most jobs of one key running at once across every
  // daemon (0: no cap), and a token bucket: at most limit_rate starts per
  // limit_rate_period, at most limit_burst at once (0: limit_rate).
  std::string limit_key = "type";
  int limit_concurrency = 0;
  int limit_rate = 0;
  Duration limit_rate_period = std::chrono::seconds(1);
  int limit_burst = 0;
  bool limited() const { return limit_concurrency > 0 || limit_rate > 0; }
  // Fairness and ageing (issue 21; README, "Fairness and ageing"): jobs of
  // different limit_key keys take the slots in turn, and a job that has
  // waited priority_ageing goes before every job that has not (0: none).
  bool fair = false;
  Duration priority_ageing{0};
  // The section's claim is jobd.claim_limited (it may park jobs).
  bool claimsByKey() const { return limited() || fair || priority_ageing > Duration::zero(); }
  // The handler's own keys (for example exec's `command`), validated.
  std::map<std::string, std::string> handler_options;
};

// One key as etc/jobd.conf documents it.
struct KeyInfo {
  std::string name;
  std::string default_value;
  std::string comment;
};

class Config {
 public:
  // Parses and validates; throws ConfigInvalid listing every problem.
  static std::shared_ptr<const Config> fromText(const std::string& text, const std::string& origin,
                                                const HandlerCatalog& handlers);
  // Reads path; a missing or unreadable file is a ConfigInvalid too.
  static std::shared_ptr<const Config> fromFile(const std::string& path,
                                                const HandlerCatalog& handlers);
  // Every default, no job sources: used when no configuration file exists.
  static std::shared_ptr<const Config> defaults();

  const std::string& origin() const { return origin_; }
  const DaemonSettings& daemon() const { return daemon_; }
  const MailSettings& mail() const { return mail_; }
  const std::vector<SectionConfig>& sections() const { return sections_; }
  const SectionConfig* section(const std::string& name) const;
  // The enabled section that claims job_type, or nullptr.
  const SectionConfig* sectionForJobType(const std::string& job_type) const;

  // The documented keys of [jobd], [mail] and job sources, for etc/jobd.conf
  // and its test.
  static const std::vector<KeyInfo>& daemonKeys();
  static const std::vector<KeyInfo>& mailKeys();
  static const std::vector<KeyInfo>& sectionKeys();

 private:
  friend class ConfigBuilder;
  std::string origin_;
  DaemonSettings daemon_;
  MailSettings mail_;
  std::vector<SectionConfig> sections_;
};

// The [jobd] keys that only a restart applies (SPEC and etc/jobd.conf say
// "restart only") whose value differs between `was` and `now`, by name.
std::vector<std::string> restartOnlyChanges(const DaemonSettings& was, const DaemonSettings& now);

}  // namespace jobd::config
