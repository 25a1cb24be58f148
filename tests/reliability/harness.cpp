#include "harness.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <pqxx/pqxx>
#include <sstream>

namespace jobd::reliability {
namespace {

long long asNumber(const testing::TestDatabase& db, const std::string& sql) {
  std::string value = db.scalar(sql);
  return value.empty() ? 0 : std::stoll(value);
}

std::string pgArray(const std::vector<long long>& values) {
  std::string text = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    text += (i ? "," : "") + std::to_string(values[i]);
  }
  return text + "}";
}

// The external ledger, "<id> <attempt>" per line, into table `ledger`.
void loadLedger(pqxx::connection& conn, const std::string& path) {
  std::vector<long long> ids, attempts;
  std::ifstream in(path);
  long long id = 0, attempt = 0;
  while (in >> id >> attempt) {
    ids.push_back(id);
    attempts.push_back(attempt);
  }
  pqxx::work txn(conn);
  txn.exec("DROP TABLE IF EXISTS ledger");
  txn.exec("CREATE TABLE ledger (job_id bigint NOT NULL, attempt integer NOT NULL)");
  txn.exec("INSERT INTO ledger SELECT * FROM unnest(" + txn.quote(pgArray(ids)) + "::bigint[], " +
           txn.quote(pgArray(attempts)) + "::integer[])");
  txn.commit();
}

}  // namespace

const Profile& profile() {
  static const Profile p = [] {
    Profile p;
    const char* env = std::getenv("JOBD_RELIABILITY");
    if (env != nullptr && std::string(env) == "full") {
      p.full = true;
      p.kill_jobs = 10000;
      p.kills = 20;
      p.restarts = 5;
      p.immediate_stops = 3;
      p.malformed = 10000;
    }
    return p;
  }();
  return p;
}

std::uint64_t seed() {
  static const std::uint64_t s = [] {
    const char* env = std::getenv("JOBD_SEED");
    std::uint64_t value = env != nullptr ? std::stoull(env) : std::random_device{}();
    std::cout << "reliability: profile " << profile().name() << ", seed " << value
              << " (repeat with JOBD_SEED=" << value << ")\n";
    return value;
  }();
  return s;
}

std::mt19937_64 rng(const std::string& scenario) {
  return std::mt19937_64(seed() ^ std::hash<std::string>{}(scenario));
}

std::chrono::milliseconds waitForDatabase(const testing::TestDatabase& db,
                                          std::chrono::seconds timeout) {
  auto start = Clock::now();
  for (;;) {
    try {
      db.connect();
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    } catch (const std::exception&) {
      if (Clock::now() - start > timeout) {
        throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

double secondsSince(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

Load::Load(const testing::TestDatabase& db)
    : db(db), ledger_path(::testing::TempDir() + db.name() + ".ledger") {
  std::remove(ledger_path.c_str());
  db.scalar("CREATE TABLE effects (job_id bigint NOT NULL)");
}

std::string Load::sections(const std::string& lease, const std::string& extra) const {
  // What both sections share: concurrency, the lease, retries, `extra`.
  const std::string common = "concurrency: 4\nlease_duration: " + lease +
                             "\nmax_retries: 20\nretry_delay: 200ms\n" + extra;
  const std::string source = JOBD_SOURCE_DIR;
  return "[work]\nhandler: sql\nstatement: INSERT INTO effects (job_id) VALUES ($2)\n" + common +
         "[ext]\nhandler: exec\ncommand: /bin/sh -c 'echo \"$JOBD_JOB_ID $JOBD_ATTEMPT\" >> " +
         ledger_path + "'\n" + common +
         // The same exactly-once effect as work's, from Python workers.
         // Workers are replaced every 25 jobs, so that replacing them is
         // under every fault too.
         "[py]\nrunner: python\nmodule: reliability_jobs\nmax_jobs_per_worker: 25\n"
         "pythonpath: " +
         source + "/python:" + source + "/tests/reliability/python\n" + common;
}

void Load::enqueue(int n) const {
  db.scalar(
      "SELECT count(jobd.enqueue(CASE g % 3 WHEN 0 THEN 'work' WHEN 1 THEN 'ext' ELSE 'py' END)) "
      "FROM generate_series(1, " +
      std::to_string(n) + ") g");
}

Feeder::Feeder(const Load& load, int total, int per_second)
    : load_(load), total_(total), per_second_(per_second), thread_([this] { run(); }) {}

Feeder::~Feeder() {
  stop_ = true;
  thread_.join();
}

void Feeder::run() {
  auto next = Clock::now();
  while (!stop_ && inserted_ < total_) {
    next += std::chrono::milliseconds(100);
    int batch = std::max(1, per_second_ / 10);
    try {
      int n = std::min(batch, total_ - inserted_);
      load_.enqueue(n);
      inserted_ += n;
    } catch (const std::exception&) {
      // The database is away: the same batch again on the next tick.
    }
    std::this_thread::sleep_until(next);
  }
}

void Feeder::finish() {
  while (inserted_ < total_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

nlohmann::json loadFigures(const testing::TestDatabase& db) {
  auto conn = db.connect();
  pqxx::work txn(*conn);
  pqxx::row r = txn.exec1(
      "SELECT count(*) FILTER (WHERE status IN (2, 3)) / greatest(extract(epoch FROM "
      "  max(date_finished) - min(date_created)), 0.001),"
      " extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY date_finished - "
      "  date_created) FILTER (WHERE status = 2)),"
      " extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY date_finished - "
      "  date_created) FILTER (WHERE status = 2)),"
      " extract(epoch FROM max(date_finished - date_created) FILTER (WHERE status = 2)) "
      "FROM jobd.job");
  auto value = [&](int i) { return r[i].is_null() ? 0.0 : r[i].as<double>(); };
  return {{"jobs_per_second", std::round(value(0))},
          {"latency_p50_s", std::round(value(1) * 1000) / 1000},
          {"latency_p99_s", std::round(value(2) * 1000) / 1000},
          {"latency_max_s", std::round(value(3) * 1000) / 1000}};
}

Fleet::Fleet(const testing::TestDatabase& db, std::string config, int size,
             std::map<std::string, std::string> env)
    : db_(db), config_(std::move(config)), env_(std::move(env)), daemons_(size) {
  for (int i = 0; i < size; ++i) {
    start(i);
  }
}

void Fleet::kill9(int i) {
  testing::Daemon& d = *daemons_.at(i);
  d.process().signal(SIGKILL);
  testing::ProcessResult r = d.process().wait(std::chrono::seconds(10));
  dead_logs_ += r.err;
  daemons_.at(i).reset();
}

void Fleet::start(int i) {
  daemons_.at(i) =
      std::make_unique<testing::Daemon>(db_, config_, std::vector<std::string>{}, env_);
}

bool Fleet::waitAllReady() {
  bool all = true;
  for (auto& d : daemons_) {
    all = d && d->waitReady() && all;
  }
  return all;
}

bool Fleet::allAlive() {
  for (auto& d : daemons_) {
    if (!d) {
      return false;
    }
    std::optional<testing::ProcStat> stat = testing::procStat(d->process().pid());
    if (!stat || stat->state == 'Z') {
      return false;
    }
  }
  return true;
}

testing::ProcessResult waitOrDump(testing::Process& process, std::chrono::seconds timeout) {
  try {
    return process.wait(timeout);
  } catch (const std::exception& e) {
    testing::ProcessResult stacks = testing::runProcess(
        {"gdb", "-batch", "-p", std::to_string(process.pid()), "-ex", "thread apply all bt"});
    testing::ProcessResult result;
    result.err = process.errSoFar();
    ADD_FAILURE() << e.what() << " after SIGTERM; its threads:\n"
                  << stacks.out << stacks.err << "\nits log:\n"
                  << result.err;
    process.signal(SIGKILL);
    try {
      process.wait(std::chrono::seconds(10));
    } catch (const std::exception&) {
      // Reaped by the Process's destructor, if ever.
    }
    return result;
  }
}

void Fleet::stopAll() {
  for (auto& d : daemons_) {
    if (d) {
      d->process().signal(SIGTERM);
    }
  }
  for (auto& d : daemons_) {
    if (d) {
      testing::ProcessResult r = waitOrDump(d->process(), std::chrono::seconds(90));
      EXPECT_EQ(r.exit_code, 0) << "a daemon did not stop cleanly:\n" << r.err;
      dead_logs_ += r.err;
      d.reset();
    }
  }
}

std::string Fleet::logs() {
  std::string all = dead_logs_;
  for (auto& d : daemons_) {
    if (d) {
      all += d->log();
    }
  }
  return all;
}

nlohmann::json Invariants::toJson() const {
  return {{"inserted", inserted},
          {"completed", completed},
          {"failed", failed},
          {"lost", not_terminal},
          {"double_claims", double_claims},
          {"tx_duplicates", tx_duplicates},
          {"tx_missing", tx_missing},
          {"external_duplicates", external_duplicates},
          {"external_unexplained", external_unexplained},
          {"failed_without_reason", failed_without_reason}};
}

Invariants settleAndCheck(const Load& load, std::chrono::seconds timeout) {
  const testing::TestDatabase& db = load.db;
  testing::waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status NOT IN (2, 3)", "0",
                        timeout);
  auto conn = db.connect();
  loadLedger(*conn, load.ledger_path);
  Invariants found;
  found.inserted = asNumber(db, "SELECT count(*) FROM jobd.job");
  found.completed = asNumber(db, "SELECT count(*) FROM jobd.job WHERE status = 2");
  found.failed = asNumber(db, "SELECT count(*) FROM jobd.job WHERE status = 3");
  found.not_terminal = asNumber(db, "SELECT count(*) FROM jobd.job WHERE status NOT IN (2, 3)");
  // Each start of an `ext` job wrote one ledger line; a (job, attempt) may
  // start again only after an attempt that gave its number back.
  found.double_claims = asNumber(
      db,
      "SELECT sum(greatest(l.n - 1 - (SELECT count(*) FROM jobd.job_attempt a "
      "  WHERE a.job_id = l.job_id AND a.attempt = l.attempt AND a.outcome = 'released'), 0)) "
      "FROM (SELECT job_id, attempt, count(*) AS n FROM ledger GROUP BY 1, 2) l");
  found.tx_duplicates = asNumber(
      db,
      "SELECT (SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM effects "
      "  GROUP BY job_id) e WHERE n > 1) + (SELECT count(*) FROM effects e JOIN jobd.job j "
      "  ON j.id = e.job_id WHERE j.status <> 2)");
  found.tx_missing =
      asNumber(db,
               "SELECT count(*) FROM jobd.job j WHERE job_type IN ('work', 'py') AND "
               "status = 2 AND NOT EXISTS (SELECT FROM effects e "
               "WHERE e.job_id = j.id)");
  found.external_duplicates =
      asNumber(db,
               "SELECT (SELECT count(*) FROM ledger) - (SELECT count(*) FROM jobd.job "
               "WHERE job_type = 'ext' AND status = 2)");
  // A start is explained when it is the completing attempt or has an
  // attempt row (lease_expired, released, crashed ...) of its own.
  found.external_unexplained =
      asNumber(db,
               "SELECT sum(greatest(l.n - (CASE WHEN j.status = 2 AND j.attempt_count = l.attempt "
               "  THEN 1 ELSE 0 END) - (SELECT count(*) FROM jobd.job_attempt a "
               "  WHERE a.job_id = l.job_id AND a.attempt = l.attempt), 0)) "
               "FROM (SELECT job_id, attempt, count(*) AS n FROM ledger GROUP BY 1, 2) l "
               "JOIN jobd.job j ON j.id = l.job_id");
  found.failed_without_reason =
      asNumber(db,
               "SELECT count(*) FROM jobd.job j WHERE status = 3 AND NOT EXISTS ("
               "SELECT FROM jobd.job_attempt a WHERE a.job_id = j.id "
               "AND (a.error_message IS NOT NULL OR a.oops_id IS NOT NULL))");
  return found;
}

bool expectHolds(const Invariants& found) {
  std::string what = found.toJson().dump();
  EXPECT_EQ(found.not_terminal, 0) << what;
  EXPECT_EQ(found.completed + found.failed, found.inserted) << what;
  EXPECT_EQ(found.double_claims, 0) << what;
  EXPECT_EQ(found.tx_duplicates, 0) << what;
  EXPECT_EQ(found.tx_missing, 0) << what;
  EXPECT_EQ(found.external_unexplained, 0) << what;
  EXPECT_EQ(found.failed_without_reason, 0) << what;
  return found.not_terminal == 0 && found.completed + found.failed == found.inserted &&
         found.double_claims == 0 && found.tx_duplicates == 0 && found.tx_missing == 0 &&
         found.external_unexplained == 0 && found.failed_without_reason == 0;
}

LeaseSampler::LeaseSampler(const testing::TestDatabase& db)
    : conninfo_(db.conninfo()), thread_([this] { run(); }) {}

LeaseSampler::~LeaseSampler() {
  stop();
}

void LeaseSampler::stop() {
  stop_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

void LeaseSampler::run() {
  std::unique_ptr<pqxx::connection> conn;
  while (!stop_) {
    try {
      if (!conn) {
        conn = std::make_unique<pqxx::connection>(conninfo_);
      }
      pqxx::nontransaction q(*conn);
      pqxx::row r = q.exec1(
          "SELECT coalesce((extract(epoch FROM max(now() - lease_expires)) * 1000)::bigint, 0) "
          "FROM jobd.job WHERE status = 1");
      long long overrun = r[0].as<long long>();
      if (Clock::now().time_since_epoch().count() >= grace_until_.load()) {
        ++samples_;
        if (overrun > max_overrun_ms_) {
          max_overrun_ms_ = overrun;
        }
      }
    } catch (const std::exception&) {
      conn.reset();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

void report(const std::string& scenario, nlohmann::json figures) {
  figures["scenario"] = scenario;
  figures["profile"] = profile().name();
  figures["seed"] = seed();
  const char* env = std::getenv("JOBD_RELIABILITY_REPORT");
  std::string path =
      env != nullptr ? env : std::string(JOBD_BUILD_DIR) + "/reliability-report.jsonl";
  std::ofstream(path, std::ios::app) << figures.dump() << "\n";
  std::cout << "RELIABILITY " << figures.dump() << "\n";
}

}  // namespace jobd::reliability
