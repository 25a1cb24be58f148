#include "runtime/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

namespace jobd::runtime {
namespace {

// A label value in the text format: backslash, double quote and newline
// escaped; job types come from rows anyone may insert.
std::string labelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  template <class Value>
  void sample(std::string_view name, std::string_view labels, Value value) {
    if (labels.empty()) {
      fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
    } else {
      fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
    }
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string typeLabel(const std::string& job_type) {
  return "job_type=\"" + labelValue(job_type) + "\"";
}

}  // namespace

void Metrics::Histogram::observe(double seconds) {
  auto bucket = std::lower_bound(kBuckets.begin(), kBuckets.end(), seconds);
  if (bucket != kBuckets.end()) {
    ++counts[static_cast<std::size_t>(bucket - kBuckets.begin())];
  }
  ++count;
  sum += seconds;
}

Metrics::TypeStats& Metrics::stats(std::string_view job_type) {
  auto it = types_.find(job_type);
  if (it == types_.end()) {
    it = types_.emplace(std::string(job_type), TypeStats{}).first;
  }
  return it->second;
}

void Metrics::claimed(const std::string& job_type, const std::vector<double>& queue_latencies) {
  std::lock_guard<std::mutex> lock(mutex_);
  TypeStats& s = stats(job_type);
  s.claimed += queue_latencies.size();
  for (double seconds : queue_latencies) {
    s.queue_latency.observe(std::max(seconds, 0.0));  // clocks of two hosts may disagree a little
  }
}

void Metrics::finished(const std::vector<Finished>& jobs) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Finished& job : jobs) {
    TypeStats& s = stats(job.job_type);
    auto it = s.finished.find(job.outcome);
    if (it == s.finished.end()) {
      it = s.finished.emplace(std::string(job.outcome), 0).first;
    }
    ++it->second;
    s.duration.observe(job.duration_seconds);
  }
}

void Metrics::leaseLost(const std::string& job_type) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats(job_type).lease_lost;
}

void Metrics::setReady(std::map<std::string, std::int64_t> ready) {
  std::lock_guard<std::mutex> lock(mutex_);
  ready_ = std::move(ready);
}

void Metrics::setLimits(std::vector<Limit> limits) {
  std::lock_guard<std::mutex> lock(mutex_);
  limits_ = std::move(limits);
}

void Metrics::setThrottled(std::map<std::string, std::int64_t> throttled) {
  std::lock_guard<std::mutex> lock(mutex_);
  throttled_ = std::move(throttled);
}

std::string Metrics::render(const Gauges& gauges) const {
  Writer w;
  w.family("jobd_build_info", "gauge", "The running jobd's version.");
  w.sample("jobd_build_info", "version=\"" + labelValue(JOBD_VERSION) + "\"", 1);
  w.family("jobd_up", "gauge", "1 while the daemon serves, 0 while it drains.");
  w.sample("jobd_up", "", gauges.draining ? 0 : 1);
  w.family("jobd_database_up", "gauge", "1 while the daemon's database connection is open.");
  w.sample("jobd_database_up", "", gauges.database_up ? 1 : 0);
  w.family("jobd_listener_up", "gauge", "1 while the LISTEN session is connected.");
  w.sample("jobd_listener_up", "", gauges.listener_up ? 1 : 0);
  w.family("jobd_worker_slots", "gauge", "Job slots: the thread pool plus process sections.");
  w.sample("jobd_worker_slots", "", gauges.slots);
  w.family("jobd_worker_slots_stuck", "gauge",
           "Thread jobs past their timeout and kill_grace that have not returned.");
  w.sample("jobd_worker_slots_stuck", "", gauges.stuck);
  w.family("jobd_outcomes_pending", "gauge", "Outcomes queued and not yet written.");
  w.sample("jobd_outcomes_pending", "", gauges.outcomes_pending);
  w.family("jobd_lease_renewals_total", "counter", "Lease renewal statements that succeeded.");
  w.sample("jobd_lease_renewals_total", "", gauges.lease_renewals);
  w.family("jobd_jobs_rescued_total", "counter",
           "RUNNING jobs with expired leases this daemon rescued.");
  w.sample("jobd_jobs_rescued_total", "", gauges.rescued);
  w.family("jobd_rows_pruned_total", "counter",
           "Rows this daemon's cleaner deleted: finished jobs past keep_finished (their "
           "attempt rows go with them) and OOPS rows past keep_oops.");
  w.sample("jobd_rows_pruned_total", "table=\"job\"", gauges.pruned_jobs);
  w.sample("jobd_rows_pruned_total", "table=\"oops\"", gauges.pruned_oopses);

  w.family("jobd_jobs_running", "gauge", "Jobs running in this daemon.");
  for (const auto& [type, n] : gauges.running) {
    w.sample("jobd_jobs_running", typeLabel(type), n);
  }
  w.family("jobd_job_progress_percent", "gauge",
           "The percentage each running job of this daemon reported last (only jobs that "
           "report progress).");
  for (const Gauges::Progress& p : gauges.progress) {
    w.sample("jobd_job_progress_percent",
             typeLabel(p.job_type) + fmt::format(",job_id=\"{}\"", p.job_id), p.percent);
  }
  w.family("jobd_progress_writes_total", "counter",
           "Progress reports this daemon wrote to jobd.job_progress (at most one a second per "
           "job, and one when it ends).");
  w.sample("jobd_progress_writes_total", "", gauges.progress_writes);

  std::lock_guard<std::mutex> lock(mutex_);
  w.family("jobd_jobs_ready", "gauge",
           "Ready jobs of the served types, from a periodic capped count.");
  for (const auto& [type, n] : ready_) {
    w.sample("jobd_jobs_ready", typeLabel(type), n);
  }
  w.family("jobd_limit_concurrency", "gauge",
           "Most jobs of one key of the type running at once across the fleet (limit_*).");
  w.family("jobd_limit_rate_per_second", "gauge",
           "Most jobs of one key of the type started per second across the fleet (limit_rate).");
  for (const Limit& l : limits_) {
    std::string labels = typeLabel(l.job_type) + ",key=\"" + labelValue(l.key) + "\"";
    if (l.concurrency > 0) {
      w.sample("jobd_limit_concurrency", labels, l.concurrency);
    }
    if (l.rate_per_second > 0) {
      w.sample("jobd_limit_rate_per_second", labels, l.rate_per_second);
    }
  }
  w.family("jobd_jobs_throttled", "gauge",
           "WAITING jobs of a limited type that its limit parked, from the periodic count.");
  for (const auto& [type, n] : throttled_) {
    w.sample("jobd_jobs_throttled", typeLabel(type), n);
  }
  w.family("jobd_jobs_claimed_total", "counter", "Jobs this daemon claimed.");
  for (const auto& [type, s] : types_) {
    w.sample("jobd_jobs_claimed_total", typeLabel(type), s.claimed);
  }
  w.family("jobd_jobs_finished_total", "counter",
           "Outcomes this daemon wrote, by the attempt's outcome.");
  for (const auto& [type, s] : types_) {
    for (const auto& [outcome, n] : s.finished) {
      w.sample("jobd_jobs_finished_total",
               typeLabel(type) + ",outcome=\"" + labelValue(outcome) + "\"", n);
    }
  }
  w.family("jobd_outcomes_lease_lost_total", "counter",
           "Outcomes not written because the lease was no longer this daemon's.");
  for (const auto& [type, s] : types_) {
    w.sample("jobd_outcomes_lease_lost_total", typeLabel(type), s.lease_lost);
  }
  for (const auto& [name, help, member] :
       {std::tuple{"jobd_job_duration_seconds", "How long jobs ran, by job type.",
                   &TypeStats::duration},
        std::tuple{"jobd_job_queue_latency_seconds",
                   "From ready (created or scheduled) to claimed, by job type.",
                   &TypeStats::queue_latency}}) {
    w.family(name, "histogram", help);
    for (const auto& [type, s] : types_) {
      const Histogram& h = s.*member;
      std::string labels = typeLabel(type);
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        cumulative += h.counts[i];
        w.sample(std::string(name) + "_bucket", labels + fmt::format(",le=\"{}\"", kBuckets[i]),
                 cumulative);
      }
      w.sample(std::string(name) + "_bucket", labels + ",le=\"+Inf\"", h.count);
      w.sample(std::string(name) + "_sum", labels, h.sum);
      w.sample(std::string(name) + "_count", labels, h.count);
    }
  }
  return w.take();
}

}  // namespace jobd::runtime
