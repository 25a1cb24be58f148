// Metrics: the daemon's counters and histograms by job type, rendered in
// the Prometheus text format for GET /metrics (SPEC §9). Claims are counted
// on the io thread (Producer), outcomes on the outcome thread once written
// (OutcomeRecorder), the ready estimate on the database thread (Controller's
// status timer); render() runs on the io thread with the gauges read there.
// One mutex, taken once per claim batch, outcome or scrape.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobd::runtime {

class Metrics {
 public:
  // Seconds: from 5 ms to 30 min, so that both no-op jobs and long exports
  // land in a bucket of their own size.
  static constexpr std::array<double, 14> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1,     2.5,  5,     10,   30,  300,  1800};

  // Jobs claimed by one statement; queue_latencies are their seconds from
  // ready (created or scheduled) to the claim.
  void claimed(const std::string& job_type, const std::vector<double>& queue_latencies);
  // Outcomes written by one batch, counted under one lock: `outcome` is
  // job_attempt.outcome's word, or "completed".
  struct Finished {
    std::string_view job_type;
    std::string_view outcome;
    double duration_seconds = 0;
  };
  void finished(const std::vector<Finished>& jobs);
  // An outcome that found its lease gone and wrote nothing.
  void leaseLost(const std::string& job_type);
  // The periodic estimate of ready jobs by type, capped at `cap` per type.
  void setReady(std::map<std::string, std::int64_t> ready);
  // The limits by key served here (schema 20), and the jobs they parked,
  // from the same periodic count.
  struct Limit {
    std::string job_type;
    std::string key;
    int concurrency = 0;         // 0: none
    double rate_per_second = 0;  // 0: none
  };
  void setLimits(std::vector<Limit> limits);
  void setThrottled(std::map<std::string, std::int64_t> throttled);

  // What the io thread knows at the moment of a scrape.
  struct Gauges {
    std::map<std::string, int> running;  // by job type
    int slots = 0;
    int stuck = 0;
    std::size_t outcomes_pending = 0;
    std::uint64_t lease_renewals = 0;
    std::uint64_t rescued = 0;
    std::uint64_t pruned_jobs = 0;
    std::uint64_t pruned_oopses = 0;
    // The latest percentage of each running job that reported one.
    struct Progress {
      std::int64_t job_id = 0;
      std::string job_type;
      double percent = 0;
    };
    std::vector<Progress> progress;
    std::uint64_t progress_writes = 0;
    bool database_up = false;
    bool listener_up = false;
    bool draining = false;
  };
  std::string render(const Gauges& gauges) const;

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> counts{};  // not cumulative
    std::uint64_t count = 0;
    double sum = 0;
    void observe(double seconds);
  };

  // Everything counted for one job type. Maps compare transparently, so
  // that counting looks keys up without building strings.
  struct TypeStats {
    std::uint64_t claimed = 0;
    std::uint64_t lease_lost = 0;
    std::map<std::string, std::uint64_t, std::less<>> finished;  // by outcome
    Histogram duration;
    Histogram queue_latency;
  };
  TypeStats& stats(std::string_view job_type);  // mutex_ held

  mutable std::mutex mutex_;
  std::map<std::string, TypeStats, std::less<>> types_;
  std::map<std::string, std::int64_t> ready_;
  std::vector<Limit> limits_;
  std::map<std::string, std::int64_t> throttled_;
};

}  // namespace jobd::runtime
