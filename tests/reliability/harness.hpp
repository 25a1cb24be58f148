// The fault-injection harness (RELIABILITY.md): the profile and seed of a
// run, the PostgreSQL cluster a scenario restarts and crashes, a fleet of
// `jobd serve` daemons it kills and restarts, the ledgers the jobs write,
// the invariant checker run after every scenario (and sampled during it),
// and the report each scenario appends its figures to. Used from the test's
// main thread, except LeaseSampler, which owns a thread of its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cluster.hpp"
#include "daemon.hpp"
#include "test_database.hpp"

namespace jobd::reliability {

using Clock = std::chrono::steady_clock;

// JOBD_RELIABILITY=full selects the full profile (run by hand); anything
// else the quick one that CI runs.
struct Profile {
  bool full = false;
  int kill_jobs = 2000;  // scenario 1
  int kills = 6;
  int restarts = 2;  // scenario 2: pg_ctl restart -m fast
  int immediate_stops = 1;
  int malformed = 2000;  // scenario 7
  std::string name() const { return full ? "full" : "quick"; }
};
const Profile& profile();

// The run's seed: JOBD_SEED, or a fresh one; printed on first use so that
// a failing run can be repeated with JOBD_SEED=<seed>.
std::uint64_t seed();
// A generator seeded from seed() and the scenario's name.
std::mt19937_64 rng(const std::string& scenario);

// Waits until a new connection succeeds; the time it took.
std::chrono::milliseconds waitForDatabase(const testing::TestDatabase& db,
                                          std::chrono::seconds timeout = std::chrono::seconds(60));

// The standard load: `work` jobs (sql) write one row of `effects` in their
// own transaction; `ext` jobs (exec) append "<id> <attempt>" to the external
// ledger file, an effect outside the database. The constructor creates
// the table.
struct Load {
  explicit Load(const testing::TestDatabase& db);
  // The [work] and [ext] sections, with leases of `lease` and retries;
  // `extra` (whole lines) is added to each.
  std::string sections(const std::string& lease = "3s", const std::string& extra = "") const;
  // Inserts n jobs, half of each type, in batches; returns when committed.
  void enqueue(int n) const;
  const testing::TestDatabase& db;
  std::string ledger_path;
};

// Inserts `total` jobs of the standard load, per_second / 10 every 100 ms,
// from its own thread; while the database is away the batch waits for the
// next tick (the load pauses, it does not catch up). Each insert is one
// committed transaction.
class Feeder {
 public:
  Feeder(const Load& load, int total, int per_second);
  ~Feeder();
  // Waits until every job is inserted.
  void finish();
  int inserted() const { return inserted_.load(); }

 private:
  void run();
  const Load& load_;
  int total_;
  int per_second_;
  std::atomic<int> inserted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The load's figures over the run so far: jobs finished per second between
// the first job's creation and the last one's end, and end-to-end latency
// (created to finished) of COMPLETED jobs, median, p99 and max.
nlohmann::json loadFigures(const testing::TestDatabase& db);

// Waits for a process sent SIGTERM. One that has not exited within the
// timeout fails the test with the stacks of its threads (gdb) and its log,
// and is killed: the result then has exit_code -1 and the log.
testing::ProcessResult waitOrDump(testing::Process& process, std::chrono::seconds timeout);

// Several `jobd serve` daemons on one database, each killable and
// restartable; their logs are kept across restarts.
class Fleet {
 public:
  // env is added to each daemon's environment (PGHOST and PGPORT, say, to
  // send its connections elsewhere than the test's).
  Fleet(const testing::TestDatabase& db, std::string config, int size,
        std::map<std::string, std::string> env = {});
  int size() const { return static_cast<int>(daemons_.size()); }
  testing::Daemon& at(int i) { return *daemons_.at(i); }
  void kill9(int i);
  void start(int i);
  // Whether every daemon logged DAEMON_READY (failures add their logs).
  bool waitAllReady();
  // Whether each daemon is still running (not exited, not a zombie).
  bool allAlive();
  // SIGTERM to all, then their exit statuses are checked (0 each).
  void stopAll();
  std::string logs();

 private:
  const testing::TestDatabase& db_;
  std::string config_;
  std::map<std::string, std::string> env_;
  std::vector<std::unique_ptr<testing::Daemon>> daemons_;
  std::string dead_logs_;
};

// What the checker found; every count but the first three must be 0
// (external_duplicates must equal external_explained).
struct Invariants {
  long long inserted = 0;
  long long completed = 0;
  long long failed = 0;
  long long not_terminal = 0;          // WAITING, RUNNING or SUSPENDED at the end
  long long double_claims = 0;         // (job, attempt) started twice, not released
  long long tx_duplicates = 0;         // `effects` rows beyond one per COMPLETED work job
  long long tx_missing = 0;            // COMPLETED work jobs without their row
  long long external_duplicates = 0;   // extra external runs
  long long external_unexplained = 0;  // ... without a recorded interrupted attempt
  long long failed_without_reason = 0;
  nlohmann::json toJson() const;
};

// Waits (up to timeout) for every job to end, then checks.
Invariants settleAndCheck(const Load& load,
                          std::chrono::seconds timeout = std::chrono::seconds(180));
// EXPECTs every invariant; returns whether they held.
bool expectHolds(const Invariants& found);

// Samples, every 250 ms on its own connection, how far past its lease any
// RUNNING job is; a failed sample (database down) is skipped. Also samples
// the terminal count, for throughput while faults are injected.
class LeaseSampler {
 public:
  explicit LeaseSampler(const testing::TestDatabase& db);
  // Samples before `until` are not counted: while the database itself is
  // away no daemon can renew or rescue, so the bound starts again when it
  // is back and the daemons' reconnect backoff has passed.
  void graceUntil(Clock::time_point until) { grace_until_ = until.time_since_epoch().count(); }
  ~LeaseSampler();
  void stop();
  double maxOverrunSeconds() const { return max_overrun_ms_.load() / 1000.0; }
  int samples() const { return samples_.load(); }

 private:
  void run();
  std::string conninfo_;
  std::atomic<bool> stop_{false};
  std::atomic<long long> max_overrun_ms_{0};
  std::atomic<int> samples_{0};
  std::atomic<Clock::rep> grace_until_{0};
  std::thread thread_;
};

// Appends one scenario's figures to the report (JOBD_RELIABILITY_REPORT, or
// reliability-report.jsonl in the build directory) and prints them.
void report(const std::string& scenario, nlohmann::json figures);

// Seconds since `since`, as a double.
double secondsSince(Clock::time_point since);

}  // namespace jobd::reliability
