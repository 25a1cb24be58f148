// jobd-bench: the benchmark's scenarios (bench/README.md), driven against
// the Release jobd binary and a PostgreSQL named by the PG* variables.
// Prints a JSON document of results on stdout; bench/run.sh makes the
// markdown table from it.
//
//   jobd-bench --jobd PATH [--peer DIR] [--quick]
//
// --peer DIR names bench/peer with graphile-worker installed in it; without
// it the peer's scenarios are skipped.
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "process.hpp"
#include "store/job_repository.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using jobd::testing::Process;

struct Options {
  std::string jobd;
  std::string peer;
  bool quick = false;
};

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string scalar(pqxx::connection& conn, const std::string& sql) {
  pqxx::nontransaction q(conn);
  pqxx::result r = q.exec(sql);
  return r.empty() || r[0][0].is_null() ? "" : r[0][0].c_str();
}

void exec(pqxx::connection& conn, const std::string& sql) {
  pqxx::nontransaction q(conn);
  q.exec(sql);
}

// From /proc/<pid>/status: VmRSS or VmHWM, in KiB; -1 when absent.
long statusKiB(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stol(line.substr(field.size() + 1));
    }
  }
  return -1;
}

// A `jobd serve` with a configuration written for one scenario.
class Daemon {
 public:
  Daemon(const Options& options, const std::string& config) {
    static int counter = 0;
    path_ =
        "/tmp/jobd_bench_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".conf";
    std::ofstream(path_) << config;
    process_ = std::make_unique<Process>(
        std::vector<std::string>{options.jobd, "--config", path_, "serve"});
    if (!process_->waitForOutput("DAEMON_READY", std::chrono::seconds(60))) {
      throw std::runtime_error("jobd did not start: " + process_->errSoFar());
    }
  }
  ~Daemon() {
    process_->signal(SIGTERM);
    process_->wait(std::chrono::seconds(120));
    std::remove(path_.c_str());
  }
  long memoryKiB(const std::string& field) const { return statusKiB(process_->pid(), field); }

 private:
  std::string path_;
  std::unique_ptr<Process> process_;
};

void waitUntil(pqxx::connection& conn, const std::string& sql, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (scalar(conn, sql) != "t") {
    if (Clock::now() > deadline) {
      throw std::runtime_error("timed out waiting for: " + sql);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void reset(pqxx::connection& conn) {
  // CASCADE: every table whose foreign key names jobd.job goes too
  // (job_result since schema 16, job_progress since 18, schedule ticks).
  exec(conn, "TRUNCATE jobd.job, jobd.job_attempt, jobd.oops CASCADE");
  // TRUNCATE keeps the statistics of what was there; a scenario after the
  // growth one would otherwise be planned for 2,000,000 rows.
  exec(conn, "ANALYZE jobd.job");
  exec(conn, "CHECKPOINT");
}

// The drains with claim_ahead take this many: graphile-worker's local
// queue in its row (bench/peer/graphile.js).
constexpr int kAhead = 500;

// 1. drain: N pre-enqueued noop jobs, one daemon: jobs/s from the first
// claim to the last completion (the database's own timestamps).
// job_type and section: another job type, and the section that serves it
// (its concurrency is appended).
nlohmann::json drain(const Options& options, pqxx::connection& conn, int workers, long jobs,
                     int daemons = 1, bool clean = true, const std::string& job_type = "noop",
                     const std::string& section = "[noop]\n") {
  if (clean) {
    reset(conn);
  }
  exec(conn, "INSERT INTO jobd.job (job_type) SELECT '" + job_type + "' FROM generate_series(1, " +
                 std::to_string(jobs) + ")");
  exec(conn, "VACUUM ANALYZE jobd.job");
  std::string config = "[jobd]\nworkers: " + std::to_string(workers) + "\npoll_interval: 1s\n" +
                       section + "concurrency: " + std::to_string(workers) + "\n";
  std::vector<std::unique_ptr<Daemon>> running;
  running.reserve(static_cast<std::size_t>(daemons));
  for (int i = 0; i < daemons; ++i) {
    running.push_back(std::make_unique<Daemon>(options, config));
  }
  waitUntil(conn,
            "SELECT NOT EXISTS (SELECT 1 FROM jobd.job WHERE status IN (0, 1) AND "
            "scheduled_start IS NULL)",
            std::chrono::seconds(600));
  double span = std::stod(
      scalar(conn,
             "SELECT extract(epoch FROM max(date_finished) - min(date_started)) FROM jobd.job "
             "WHERE date_started > now() - interval '1 hour' AND status = 2"));
  long peak_kib = running[0]->memoryKiB("VmHWM");
  running.clear();
  return {{"workers", workers},
          {"daemons", daemons},
          {"jobs", jobs},
          {"seconds", span},
          {"jobs_per_s", static_cast<double>(jobs) / span},
          {"peak_rss_kib", peak_kib}};
}

nlohmann::json percentiles(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    return ms.empty() ? 0.0
                      : ms[std::min(ms.size() - 1,
                                    static_cast<std::size_t>(p * static_cast<double>(ms.size())))];
  };
  return {{"jobs", ms.size()},
          {"p50_ms", pct(0.5)},
          {"p90_ms", pct(0.9)},
          {"p99_ms", pct(0.99)},
          {"max_ms", ms.empty() ? 0.0 : ms.back()}};
}

// 11. python: no-op Python jobs (bench/python/benchjobs.py) on 8 workers,
// in the long-lived workers of a `runner = python` section and through
// `exec` with a fresh interpreter per job running the same job class; the
// per-job overhead is what a Python job costs over a noop job on 8 threads
// (1/rate each), measured in this run.
nlohmann::json python(const Options& options, pqxx::connection& conn, long jobs, long exec_jobs,
                      const nlohmann::json& noop8) {
  const std::string path = std::filesystem::absolute("python").string() + ":" +
                           std::filesystem::absolute("bench/python").string();
  nlohmann::json out;
  std::cerr << "python: runner = python, workers=8 jobs=" << jobs << "\n";
  out["runner"] = drain(options, conn, 8, jobs, 1, true, "py_noop",
                        "[py_noop]\nrunner: python\nmodule: benchjobs\npythonpath: " + path + "\n");
  std::cerr << "python: runner = python, claim_ahead " << kAhead << ", workers=8 jobs=" << jobs
            << "\n";
  out["runner_ahead"] = drain(options, conn, 8, jobs, 1, true, "py_noop",
                              "[py_noop]\nrunner: python\nmodule: benchjobs\npythonpath: " + path +
                                  "\nclaim_ahead: " + std::to_string(kAhead) + "\n");
  std::cerr << "python: exec, workers=8 jobs=" << exec_jobs << "\n";
  out["exec"] = drain(options, conn, 8, exec_jobs, 1, true, "py_exec",
                      "[py_exec]\nhandler: exec\ncommand: /usr/bin/env PYTHONPATH=" + path +
                          " /usr/bin/python3 " +
                          std::filesystem::absolute("bench/python/exec_noop.py").string() + "\n");
  double runner_rate = out["runner"]["jobs_per_s"];
  double exec_rate = out["exec"]["jobs_per_s"];
  out["runner_over_exec"] = runner_rate / exec_rate;
  if (noop8.is_object()) {
    double noop_rate = noop8["jobs_per_s"];
    out["noop_jobs_per_s"] = noop_rate;
    out["overhead_us"] = 1e6 / runner_rate - 1e6 / noop_rate;
  }
  return out;
}

// 2. latency: an idle consumer; one job per transaction at a fixed rate;
// commit acknowledged (the client's clock) -> handler entered (the
// handler's INSERT of clock_timestamp() into bench_latency; one machine,
// one clock). `enqueue` returns the new job's id; `start` starts the
// consumer once the table exists. A first second at the same rate warms
// the consumer up (each of jobd's workers opens its job connection at its
// first job, about 100 ms here); it is measured apart, as "warmup".
nlohmann::json latencyRun(pqxx::connection& conn, int rate, int secs, const std::string& enqueue,
                          const std::function<void()>& start) {
  exec(conn, "DROP TABLE IF EXISTS bench_latency");
  exec(conn, "CREATE TABLE bench_latency (job_id bigint PRIMARY KEY, entered timestamptz)");
  start();
  pqxx::connection client;
  client.prepare("enqueue", enqueue);
  auto period = std::chrono::microseconds(1000000 / rate);
  long total = 0;
  // job id -> the commit's acknowledgement, epoch seconds
  auto run = [&](int jobs) {
    std::map<long, double> acked;
    auto next = Clock::now();
    for (int i = 0; i < jobs; ++i) {
      std::this_thread::sleep_until(next);
      next += period;
      pqxx::work txn(client);
      long id = txn.exec_prepared1("enqueue")[0].as<long>();
      txn.commit();
      acked[id] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                      .count();
    }
    total += jobs;
    waitUntil(conn, "SELECT count(*) >= " + std::to_string(total) + " FROM bench_latency",
              std::chrono::seconds(60));
    std::vector<double> ms;
    pqxx::nontransaction q(conn);
    for (const pqxx::row& row :
         q.exec("SELECT job_id, extract(epoch FROM entered) FROM bench_latency")) {
      auto it = acked.find(row[0].as<long>());
      if (it != acked.end()) {
        ms.push_back((row[1].as<double>() - it->second) * 1000.0);
      }
    }
    return percentiles(std::move(ms));
  };
  nlohmann::json warmup = run(rate);
  nlohmann::json out = run(rate * secs);
  out["warmup"] = warmup;
  out["rate"] = rate;
  out["seconds"] = secs;
  return out;
}

nlohmann::json latency(const Options& options, pqxx::connection& conn, int rate, int secs) {
  reset(conn);
  std::unique_ptr<Daemon> daemon;
  nlohmann::json out = latencyRun(conn, rate, secs, "SELECT jobd.enqueue('lat')", [&] {
    daemon = std::make_unique<Daemon>(
        options,
        "[jobd]\nworkers: 8\n[lat]\nhandler: sql\nconcurrency: 8\nstatement: INSERT INTO "
        "bench_latency VALUES ($2, clock_timestamp())\n");
  });
  out["idle_rss_kib"] = daemon->memoryKiB("VmRSS");
  return out;
}

// 3. sustained: jobs arrive in a batch every 10 ms at `rate` jobs/s for
// `secs`; latency is the claim's time minus the enqueue transaction's
// (date_started - date_created, both the database's clock).
nlohmann::json sustained(const Options& options, pqxx::connection& conn, int workers, double rate,
                         int secs) {
  reset(conn);
  Daemon daemon(options,
                "[jobd]\nworkers: " + std::to_string(workers) +
                    "\npoll_interval: 1s\n[noop]\nconcurrency: " + std::to_string(workers) + "\n");
  pqxx::connection client;
  client.prepare("enqueue_n",
                 "INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, $1)");
  auto start = Clock::now();
  auto next = start;
  double owed = 0;
  long sent = 0;
  while (Clock::now() - start < std::chrono::seconds(secs)) {
    std::this_thread::sleep_until(next);
    next += std::chrono::milliseconds(10);
    owed += rate / 100.0;
    long n = static_cast<long>(owed);
    owed -= static_cast<double>(n);
    if (n > 0) {
      pqxx::work txn(client);
      txn.exec_prepared("enqueue_n", n);
      txn.commit();
      sent += n;
    }
  }
  waitUntil(conn, "SELECT count(*) = 0 FROM jobd.job WHERE status <> 2", std::chrono::seconds(120));
  std::vector<double> ms;
  pqxx::nontransaction q(conn);
  for (const pqxx::row& row :
       q.exec("SELECT extract(epoch FROM date_started - date_created) * 1000 FROM jobd.job")) {
    ms.push_back(row[0].as<double>());
  }
  nlohmann::json out = percentiles(std::move(ms));
  out["rate"] = rate;
  out["workers"] = workers;
  out["sent"] = sent;
  return out;
}

// 4. growth: the drain again, with 1,000,000 finished and 1,000,000
// far-future jobs of the same type in the table.
nlohmann::json growth(const Options& options, pqxx::connection& conn, int workers, long jobs,
                      long extra) {
  reset(conn);
  std::string n = std::to_string(extra);
  exec(conn,
       "INSERT INTO jobd.job (job_type, status, attempt_count, date_started, date_finished) "
       "SELECT 'noop', 2, 1, now() - interval '1 day', now() - interval '1 day' FROM "
       "generate_series(1, " +
           n + ")");
  exec(conn,
       "INSERT INTO jobd.job (job_type, scheduled_start) "
       "SELECT 'noop', now() + interval '10 years' FROM generate_series(1, " +
           n + ")");
  nlohmann::json out = drain(options, conn, workers, jobs, 1, false);
  out["extra_finished"] = extra;
  out["extra_far_future"] = extra;
  return out;
}

// 8. the limit: pgbench replays jobd's own claim (jobd.claim_ready, its
// rows folded into arrays) and completion (jobd.complete_jobs)
// in batches of `batch`, on `clients` connections with
// synchronous_commit = off (as the daemon's outcome connection has; its
// claims wait for their flush): jobs/s as the drain measures it.
nlohmann::json pgbenchLimit(pqxx::connection& conn, long jobs, int batch, int clients) {
  reset(conn);
  exec(conn, "INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, " +
                 std::to_string(jobs) + ")");
  exec(conn, "VACUUM ANALYZE jobd.job");
  std::string claim = jobd::store::JobRepository::claimSql();
  const std::string select_all = "SELECT * FROM ";
  if (claim.rfind(select_all, 0) != 0) {
    throw std::runtime_error("the claim's SQL changed shape; update pgbenchLimit");
  }
  claim =
      "SELECT coalesce(array_agg(id), '{}')::text AS ids, "
      "coalesce(array_agg(attempt_count), '{}')::text AS attempts FROM " +
      claim.substr(select_all.size()) + " \\gset\n";
  const std::vector<std::pair<std::string, std::string>> params = {{"$1", "'noop'"},
                                                                   {"$2", std::to_string(batch)},
                                                                   {"$3", "'5 minutes'"},
                                                                   {"$4", "'pgbench'"},
                                                                   {"$5", "1048576"}};
  for (const auto& [from, to] : params) {
    for (std::size_t at = claim.find(from); at != std::string::npos; at = claim.find(from, at)) {
      claim.replace(at, from.size(), to);
      at += to.size();
    }
  }
  std::string script = "/tmp/jobd_bench_" + std::to_string(getpid()) + ".pgbench";
  std::ofstream(script) << claim
                        << "SELECT count(*) FROM jobd.complete_jobs(:ids, :attempts, 'pgbench');\n";
  long per_batch = static_cast<long>(batch) * clients;
  long per_client = (jobs + per_batch - 1) / per_batch;
  jobd::testing::ProcessOptions popts;
  popts.env["PGOPTIONS"] = "-c synchronous_commit=off";
  auto result = jobd::testing::runProcess(
      {"pgbench", "-n", "-M", "prepared", "-f", script, "-c", std::to_string(clients), "-j",
       std::to_string(std::min(clients, 2)), "-t", std::to_string(per_client)},
      popts);
  std::remove(script.c_str());
  if (result.exit_code != 0) {
    throw std::runtime_error("pgbench failed: " + result.err + result.out);
  }
  long done = std::stol(scalar(conn, "SELECT count(*) FROM jobd.job WHERE status = 2"));
  double span = std::stod(
      scalar(conn,
             "SELECT extract(epoch FROM max(date_finished) - min(date_started)) FROM jobd.job "
             "WHERE status = 2"));
  return {{"batch", batch},
          {"clients", clients},
          {"jobs", done},
          {"seconds", span},
          {"jobs_per_s", static_cast<double>(done) / span}};
}

// 9. the peer: graphile-worker, as bench/peer/graphile.js runs it.
class Peer {
 public:
  explicit Peer(const Options& options) {
    process_ = std::make_unique<Process>(std::vector<std::string>{
        options.peer + "/node_modules/.bin/node", options.peer + "/graphile.js", "serve"});
    if (!process_->waitForOutput("READY", std::chrono::seconds(60))) {
      throw std::runtime_error("graphile-worker did not start: " + process_->errSoFar());
    }
  }
  ~Peer() {
    process_->signal(SIGTERM);
    process_->wait(std::chrono::seconds(60));
  }
  long memoryKiB(const std::string& field) const { return statusKiB(process_->pid(), field); }

 private:
  std::unique_ptr<Process> process_;
};

void resetPeer(pqxx::connection& conn) {
  exec(conn, "TRUNCATE graphile_worker._private_jobs CASCADE");
  exec(conn, "ANALYZE graphile_worker._private_jobs");
  exec(conn, "CHECKPOINT");
}

// graphile-worker deletes a job when it completes and keeps no start time:
// the drain is timed from the first locked job to an empty table, polled
// every 2 ms.
nlohmann::json peerDrain(const Options& options, pqxx::connection& conn, long jobs) {
  resetPeer(conn);
  exec(conn,
       "SELECT graphile_worker.add_jobs(array(SELECT json_populate_record(NULL::"
       "graphile_worker.job_spec, '{\"identifier\": \"noop\"}') FROM generate_series(1, " +
           std::to_string(jobs) + ")))");
  exec(conn, "VACUUM ANALYZE graphile_worker._private_jobs");
  Peer peer(options);
  auto deadline = Clock::now() + std::chrono::seconds(600);
  auto poll = [&](const std::string& sql) {
    while (scalar(conn, sql) != "t") {
      if (Clock::now() > deadline) {
        throw std::runtime_error("graphile-worker drain timed out");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return Clock::now();
  };
  auto first = poll(
      "SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs WHERE locked_at IS NOT NULL)");
  auto last = poll("SELECT NOT EXISTS (SELECT 1 FROM graphile_worker._private_jobs)");
  double span = seconds(last - first);
  return {{"jobs", jobs},
          {"seconds", span},
          {"jobs_per_s", static_cast<double>(jobs) / span},
          {"peak_rss_kib", peer.memoryKiB("VmHWM")}};
}

nlohmann::json peerLatency(const Options& options, pqxx::connection& conn, int rate, int secs) {
  resetPeer(conn);
  std::unique_ptr<Peer> peer;
  nlohmann::json out = latencyRun(conn, rate, secs, "SELECT (graphile_worker.add_job('lat')).id",
                                  [&] { peer = std::make_unique<Peer>(options); });
  out["idle_rss_kib"] = peer->memoryKiB("VmRSS");
  return out;
}

// 6. enqueue: single-job transactions through jobd.enqueue, and one bulk
// INSERT of many jobs.
nlohmann::json enqueue(pqxx::connection& conn, int secs, long bulk) {
  reset(conn);
  conn.prepare("enqueue_one", "SELECT jobd.enqueue('nobody')");
  long single = 0;
  auto start = Clock::now();
  while (Clock::now() - start < std::chrono::seconds(secs)) {
    pqxx::work txn(conn);
    txn.exec_prepared("enqueue_one");
    txn.commit();
    ++single;
  }
  double single_s = seconds(Clock::now() - start);
  start = Clock::now();
  exec(conn, "INSERT INTO jobd.job (job_type) SELECT 'nobody' FROM generate_series(1, " +
                 std::to_string(bulk) + ")");
  double bulk_s = seconds(Clock::now() - start);
  return {{"single_per_s", static_cast<double>(single) / single_s},
          {"bulk_jobs", bulk},
          {"bulk_per_s", static_cast<double>(bulk) / bulk_s}};
}

// 10. web-scale enqueue: `clients` pgbench clients, each a web request that
// commits a write of its own plus one jobd.enqueue (durable commits, the
// server's setting), for `secs`, with the insert trigger and without it; a
// daemon serves the jobs throughout, as in production (without the
// trigger it finds them by its 1 s poll). PostgreSQL takes a cluster-wide
// lock at the commit of every transaction that sent a NOTIFY: this
// measures what the trigger costs, quiet enqueues (schema 9) included.
// Runs alternate (without, with, ...) and the best of each counts.
nlohmann::json webEnqueue(const Options& options, pqxx::connection& conn, int clients, int secs,
                          int rounds) {
  reset(conn);
  exec(conn, "DROP TABLE IF EXISTS bench_web; CREATE TABLE bench_web (id bigserial, note text)");
  Daemon consumer(
      options, "[jobd]\npoll_interval: 1s\nworkers: 32\n[web]\nhandler: noop\nconcurrency: 32\n");
  std::string script = "/tmp/jobd_bench_web_" + std::to_string(getpid()) + ".pgbench";
  std::ofstream(script) << "BEGIN;\n"
                           "INSERT INTO bench_web (note) VALUES ('a request');\n"
                           "SELECT jobd.enqueue('web', '{\"user\": 7}');\n"
                           "COMMIT;\n";
  auto run = [&]() {
    auto result =
        jobd::testing::runProcess({"pgbench", "-n", "-M", "prepared", "-f", script, "-c",
                                   std::to_string(clients), "-j", "2", "-T", std::to_string(secs)},
                                  {{}, {}, std::chrono::seconds(secs + 120)});
    if (result.exit_code != 0) {
      throw std::runtime_error("pgbench failed: " + result.err + result.out);
    }
    std::size_t at = result.out.find("tps = ");
    if (at == std::string::npos) {
      throw std::runtime_error("no tps in pgbench's output: " + result.out);
    }
    return std::stod(result.out.substr(at + 6));
  };
  double with = 0;
  double without = 0;
  for (int round = 0; round < rounds; ++round) {
    exec(conn, "ALTER TABLE jobd.job DISABLE TRIGGER job_notify_insert");
    without = std::max(without, run());
    exec(conn, "ALTER TABLE jobd.job ENABLE TRIGGER job_notify_insert");
    with = std::max(with, run());
  }
  std::remove(script.c_str());
  exec(conn, "DROP TABLE bench_web");
  return {{"clients", clients},
          {"seconds", secs},
          {"rounds", rounds},
          {"commits_per_s_with_trigger", with},
          {"commits_per_s_without_trigger", without},
          {"ratio", without > 0 ? with / without : 0}};
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::string only;
  double best_rate_arg = 0;
  const char* usage =
      "usage: jobd-bench --jobd PATH [--peer DIR] [--only a,b] [--best-rate N] [--quick]\n";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--jobd" && i + 1 < argc) {
      options.jobd = argv[++i];
    } else if (arg == "--peer" && i + 1 < argc) {
      options.peer = argv[++i];
    } else if (arg == "--only" && i + 1 < argc) {
      only = "," + std::string(argv[++i]) + ",";
    } else if (arg == "--best-rate" && i + 1 < argc) {
      best_rate_arg = std::stod(argv[++i]);
    } else if (arg == "--quick") {
      options.quick = true;
    } else {
      std::cerr << usage;
      return 64;
    }
  }
  if (options.jobd.empty()) {
    std::cerr << usage;
    return 64;
  }
  // --only drain,limit,...: the named scenarios alone (for development).
  auto want = [&](const std::string& name) {
    return only.empty() || only.find("," + name + ",") != std::string::npos;
  };
  try {
    pqxx::connection conn;
    nlohmann::json out;
    bool quick = options.quick;
    out["profile"] = quick ? "quick" : "full";
    out["postgresql"] = scalar(conn, "SHOW server_version");
    out["fsync"] = scalar(conn, "SHOW fsync");
    out["synchronous_commit"] = scalar(conn, "SHOW synchronous_commit");
    long jobs = quick ? 5000 : 200000;
    int secs = quick ? 3 : 20;
    std::vector<int> workers = quick ? std::vector<int>{8} : std::vector<int>{1, 8, 32, 128};
    // --best-rate: the sustained scenario's 100% without running the drain
    // first (with --only sustained, for development).
    double best_rate = best_rate_arg;
    int best_workers = workers.back();
    if (want("drain")) {
      for (int w : workers) {
        std::cerr << "drain: workers=" << w << " jobs=" << jobs << "\n";
        out["drain"].push_back(drain(options, conn, w, jobs));
        double rate = out["drain"].back()["jobs_per_s"];
        if (rate > best_rate) {
          best_rate = rate;
          best_workers = w;
        }
      }
    }
    // The same drains with `claim_ahead` (README, "Claiming ahead"), as
    // many jobs ahead as graphile-worker's local queue holds in its row.
    if (want("ahead")) {
      for (int w : workers) {
        std::cerr << "drain: workers=" << w << " claim_ahead=" << kAhead << "\n";
        out["drain_ahead"].push_back(
            drain(options, conn, w, jobs, 1, true, "noop",
                  "[noop]\nclaim_ahead: " + std::to_string(kAhead) + "\n"));
        out["drain_ahead"].back()["claim_ahead"] = kAhead;
      }
    }
    if (want("daemons")) {
      for (int d : quick ? std::vector<int>{2} : std::vector<int>{2, 4}) {
        std::cerr << "drain: daemons=" << d << "\n";
        out["drain_daemons"].push_back(drain(options, conn, 32, jobs, d));
      }
    }
    if (want("growth")) {
      std::cerr << "growth: workers=" << best_workers << "\n";
      out["growth"] = growth(options, conn, best_workers, jobs, quick ? 20000 : 1000000);
    }
    if (want("latency")) {
      std::cerr << "latency\n";
      out["latency"] = latency(options, conn, 50, secs);
    }
    if (want("sustained") && best_rate > 0) {
      for (double share : {0.5, 0.9}) {
        std::cerr << "sustained: " << share * 100 << "% of " << best_rate << " jobs/s\n";
        nlohmann::json run = sustained(options, conn, best_workers, share * best_rate, secs);
        run["share"] = share;
        out["sustained"].push_back(run);
      }
    }
    if (want("enqueue")) {
      std::cerr << "enqueue\n";
      out["enqueue"] = enqueue(conn, quick ? 1 : 5, quick ? 10000 : 100000);
    }
    if (want("web")) {
      std::cerr << "web enqueue: 64 clients, with and without the trigger\n";
      out["web_enqueue"] = webEnqueue(options, conn, 64, quick ? 2 : 15, quick ? 1 : 2);
    }
    if (want("limit")) {
      for (int clients : quick ? std::vector<int>{2} : std::vector<int>{1, 2, 4}) {
        std::cerr << "limit: pgbench clients=" << clients << "\n";
        out["limit"].push_back(pgbenchLimit(conn, jobs, 32, clients));
      }
      // The same SQL in claims of kAhead: the most that the drains with
      // claim_ahead claim at once (and what graphile-worker's local queue
      // fetches), so a ceiling for them.
      for (int clients : quick ? std::vector<int>{2} : std::vector<int>{1, 2}) {
        std::cerr << "limit: pgbench batch=" << kAhead << " clients=" << clients << "\n";
        out["limit_ahead"].push_back(pgbenchLimit(conn, jobs, kAhead, clients));
      }
    }
    if (want("python")) {
      nlohmann::json noop8;
      for (const nlohmann::json& d : out.value("drain", nlohmann::json::array())) {
        if (d["workers"] == 8) {
          noop8 = d;
        }
      }
      if (!noop8.is_object()) {
        std::cerr << "drain: workers=8 jobs=" << jobs << " (for the python scenario)\n";
        noop8 = drain(options, conn, 8, jobs);
      }
      out["python"] = python(options, conn, quick ? 1000 : 50000, quick ? 100 : 2000, noop8);
    }
    if (!options.peer.empty() && want("peer")) {
      std::cerr << "peer: graphile-worker drain\n";
      out["peer"]["drain"] = peerDrain(options, conn, jobs);
      std::cerr << "peer: graphile-worker latency\n";
      out["peer"]["latency"] = peerLatency(options, conn, 50, secs);
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "jobd-bench: " << e.what() << "\n";
    return 1;
  }
}
