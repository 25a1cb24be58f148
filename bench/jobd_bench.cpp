// jobd-bench: the benchmark's scenarios (bench/README.md), driven against
// the Release jobd binary and a PostgreSQL named by the PG* variables.
// Prints a JSON document of results on stdout; bench/run.sh makes the
// markdown table from it.
//
//   jobd-bench --jobd PATH [--quick]
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "process.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using jobd::testing::Process;

struct Options {
  std::string jobd;
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
  // From /proc/<pid>/status: VmRSS and VmHWM, in KiB.
  long memoryKiB(const std::string& field) const {
    std::ifstream status("/proc/" + std::to_string(process_->pid()) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind(field + ":", 0) == 0) {
        return std::stol(line.substr(field.size() + 1));
      }
    }
    return -1;
  }

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
  exec(conn, "TRUNCATE jobd.job, jobd.job_attempt, jobd.oops");
  exec(conn, "CHECKPOINT");
}

// 1. drain: N pre-enqueued noop jobs, one daemon: jobs/s from the first
// claim to the last completion (the database's own timestamps).
nlohmann::json drain(const Options& options, pqxx::connection& conn, int workers, long jobs,
                     int daemons = 1) {
  reset(conn);
  exec(conn, "INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, " +
                 std::to_string(jobs) + ")");
  exec(conn, "VACUUM ANALYZE jobd.job");
  std::string config = "[jobd]\nworkers: " + std::to_string(workers) +
                       "\npoll_interval: 1s\n[noop]\nconcurrency: " + std::to_string(workers) +
                       "\n";
  std::vector<std::unique_ptr<Daemon>> running;
  running.reserve(static_cast<std::size_t>(daemons));
  for (int i = 0; i < daemons; ++i) {
    running.push_back(std::make_unique<Daemon>(options, config));
  }
  waitUntil(conn, "SELECT count(*) = 0 FROM jobd.job WHERE status <> 2", std::chrono::seconds(600));
  double span = std::stod(scalar(
      conn, "SELECT extract(epoch FROM max(date_finished) - min(date_started)) FROM jobd.job"));
  long peak_kib = running[0]->memoryKiB("VmHWM");
  running.clear();
  return {{"workers", workers},
          {"daemons", daemons},
          {"jobs", jobs},
          {"seconds", span},
          {"jobs_per_s", static_cast<double>(jobs) / span},
          {"peak_rss_kib", peak_kib}};
}

// 2. latency: an idle daemon; one job per transaction at a fixed rate;
// commit acknowledged (the client's clock) -> handler entered (the sql
// handler's clock_timestamp(); one machine, one clock).
nlohmann::json latency(const Options& options, pqxx::connection& conn, int rate, int secs) {
  reset(conn);
  exec(conn, "DROP TABLE IF EXISTS bench_latency");
  exec(conn, "CREATE TABLE bench_latency (job_id bigint PRIMARY KEY, entered timestamptz)");
  exec(conn, "CREATE TEMP TABLE IF NOT EXISTS acked (job_id bigint, at timestamptz)");
  Daemon daemon(options,
                "[jobd]\nworkers: 8\n[lat]\nhandler: sql\nconcurrency: 8\nstatement: INSERT INTO "
                "bench_latency VALUES ($2, clock_timestamp())\n");
  long idle_kib = daemon.memoryKiB("VmRSS");
  pqxx::connection client;
  client.prepare("enqueue", "SELECT jobd.enqueue('lat')");
  std::vector<std::pair<long, double>> acked;  // job id, epoch seconds
  auto period = std::chrono::microseconds(1000000 / rate);
  auto next = Clock::now();
  for (int i = 0; i < rate * secs; ++i) {
    std::this_thread::sleep_until(next);
    next += period;
    pqxx::work txn(client);
    long id = txn.exec_prepared1("enqueue")[0].as<long>();
    txn.commit();
    double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    acked.emplace_back(id, now);
  }
  waitUntil(conn, "SELECT count(*) = 0 FROM jobd.job WHERE status <> 2", std::chrono::seconds(60));
  std::vector<double> ms;
  pqxx::nontransaction q(conn);
  for (const pqxx::row& row :
       q.exec("SELECT job_id, extract(epoch FROM entered) FROM bench_latency")) {
    long id = row[0].as<long>();
    double entered = row[1].as<double>();
    auto it =
        std::find_if(acked.begin(), acked.end(), [id](const auto& a) { return a.first == id; });
    if (it != acked.end()) {
      ms.push_back((entered - it->second) * 1000.0);
    }
  }
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    return ms.empty() ? 0.0
                      : ms[std::min(ms.size() - 1,
                                    static_cast<std::size_t>(p * static_cast<double>(ms.size())))];
  };
  return {{"rate", rate},
          {"seconds", secs},
          {"jobs", ms.size()},
          {"p50_ms", pct(0.5)},
          {"p90_ms", pct(0.9)},
          {"p99_ms", pct(0.99)},
          {"max_ms", ms.empty() ? 0.0 : ms.back()},
          {"idle_rss_kib", idle_kib}};
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

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--jobd" && i + 1 < argc) {
      options.jobd = argv[++i];
    } else if (arg == "--quick") {
      options.quick = true;
    } else {
      std::cerr << "usage: jobd-bench --jobd PATH [--quick]\n";
      return 64;
    }
  }
  if (options.jobd.empty()) {
    std::cerr << "usage: jobd-bench --jobd PATH [--quick]\n";
    return 64;
  }
  try {
    pqxx::connection conn;
    nlohmann::json out;
    out["profile"] = options.quick ? "quick" : "full";
    out["postgresql"] = scalar(conn, "SHOW server_version");
    out["fsync"] = scalar(conn, "SHOW fsync");
    out["synchronous_commit"] = scalar(conn, "SHOW synchronous_commit");
    long jobs = options.quick ? 5000 : 200000;
    std::vector<int> workers =
        options.quick ? std::vector<int>{8} : std::vector<int>{1, 8, 32, 128};
    for (int w : workers) {
      std::cerr << "drain: workers=" << w << " jobs=" << jobs << "\n";
      out["drain"].push_back(drain(options, conn, w, jobs));
    }
    for (int d : options.quick ? std::vector<int>{2} : std::vector<int>{2, 4}) {
      std::cerr << "drain: daemons=" << d << "\n";
      out["drain_daemons"].push_back(drain(options, conn, 32, jobs, d));
    }
    std::cerr << "latency\n";
    out["latency"] = latency(options, conn, 50, options.quick ? 3 : 20);
    std::cerr << "enqueue\n";
    out["enqueue"] = enqueue(conn, options.quick ? 1 : 5, options.quick ? 10000 : 100000);
    std::cout << out.dump(2) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "jobd-bench: " << e.what() << "\n";
    return 1;
  }
}
