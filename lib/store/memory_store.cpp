#include "store/memory_store.hpp"

#include <algorithm>
#include <set>
#include <stdexcept>

namespace jobd::store {
namespace {

double secondsBetween(MemoryStore::Clock::time_point from, MemoryStore::Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::string timeText(MemoryStore::Clock::time_point at) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(at.time_since_epoch()).count());
}

}  // namespace

std::int64_t MemoryStore::enqueue(const NewJob& request) {
  Job job;
  job.id = next_id_++;
  job.job_type = request.job_type;
  job.json_data = request.json_data;
  job.priority = request.priority;
  job.target = request.target;
  job.max_retries = request.max_retries;
  job.date_created = now();
  if (request.delay) {
    job.scheduled_start = job.date_created + *request.delay;
  }
  jobs_[job.id] = job;
  return job.id;
}

const MemoryStore::Job* MemoryStore::job(std::int64_t id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

void MemoryStore::claimAs(std::int64_t id, const std::string& owner, Duration lease) {
  Job& job = jobs_.at(id);
  job.status = JobStatus::kRunning;
  ++job.attempt_count;
  job.date_started = now();
  job.lease_expires = now() + lease;
  job.lease_owner = owner;
}

bool MemoryStore::ready(const Job& job, Clock::time_point now) const {
  if (job.status != JobStatus::kWaiting || (job.scheduled_start && *job.scheduled_start > now) ||
      (job.lease_expires && *job.lease_expires > now)) {
    return false;
  }
  if (!job.target) {
    return true;
  }
  return std::none_of(jobs_.begin(), jobs_.end(), [&](const auto& entry) {
    return entry.second.status == JobStatus::kRunning && entry.second.target == job.target;
  });
}

MemoryStore::Job* MemoryStore::held(std::int64_t id, int attempt) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.status != JobStatus::kRunning ||
      it->second.attempt_count != attempt || it->second.lease_owner != owner_) {
    return nullptr;
  }
  return &it->second;
}

int MemoryStore::saveProgress(const std::vector<runtime::ProgressReport>& reports) {
  int written = 0;
  for (const runtime::ProgressReport& report : reports) {
    Job* job = held(report.key.id, report.key.attempt);
    if (job == nullptr) {
      continue;
    }
    job->percent = report.update.percent ? report.update.percent : job->percent;
    job->message = report.update.message ? report.update.message : job->message;
    job->checkpoint = report.update.checkpoint ? report.update.checkpoint : job->checkpoint;
    ++written;
  }
  return written;
}

ClaimResult MemoryStore::claim(const ClaimRequest& request) {
  if (request.key_limit) {
    throw std::logic_error("MemoryStore: limits by key need PostgreSQL (jobd.claim_limited)");
  }
  auto sent = std::chrono::steady_clock::now();
  Clock::time_point at = now();
  std::vector<Job*> candidates;
  std::vector<Job*> due;
  for (auto& [id, job] : jobs_) {
    if (job.job_type == request.job_type && ready(job, at)) {
      (job.scheduled_start ? due : candidates).push_back(&job);
    }
  }
  // Due jobs: the window of the longest due (kDueWindow).
  std::stable_sort(due.begin(), due.end(), [](const Job* a, const Job* b) {
    return *a->scheduled_start < *b->scheduled_start;
  });
  due.resize(std::min<std::size_t>(due.size(), kDueWindow + std::max(request.limit, 0)));
  candidates.insert(candidates.end(), due.begin(), due.end());
  std::sort(candidates.begin(), candidates.end(),
            [](const Job* a, const Job* b) { return a->id < b->id; });
  // jobs_ is in id order: a stable sort by priority gives priority, then id.
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Job* a, const Job* b) { return a->priority < b->priority; });
  ClaimResult result;
  std::set<std::string> targets;
  for (Job* job : candidates) {
    if (static_cast<int>(result.jobs.size()) >= request.limit) {
      break;
    }
    if (job->target && !targets.insert(*job->target).second) {
      continue;  // one job per target
    }
    job->status = JobStatus::kRunning;
    ++job->attempt_count;
    job->date_started = at;
    job->date_finished.reset();
    job->lease_expires = at + request.lease_duration;
    job->lease_owner = owner_;
    runtime::ClaimedJob claimed;
    claimed.id = job->id;
    claimed.job_type = job->job_type;
    claimed.section = request.section;
    claimed.attempt = job->attempt_count;
    claimed.max_retries = job->max_retries;
    claimed.priority = job->priority;
    claimed.target = job->target;
    claimed.payload_size = job->json_data.size();
    claimed.max_result = request.max_payload;
    if (job->json_data.size() <= request.max_payload) {
      claimed.json_data = job->json_data;
    }
    claimed.checkpoint = job->checkpoint;
    claimed.claimed_at = sent;
    claimed.queue_latency = secondsBetween(
        std::max(job->date_created, job->scheduled_start.value_or(job->date_created)), at);
    result.jobs.push_back(std::move(claimed));
  }
  return result;
}

std::optional<double> MemoryStore::nextScheduledIn(const std::string& job_type, bool /*limited*/) {
  Clock::time_point at = now();
  std::optional<Clock::time_point> next;
  for (const auto& [id, job] : jobs_) {
    if (job.job_type == job_type && job.status == JobStatus::kWaiting && job.scheduled_start &&
        *job.scheduled_start > at && (!next || *job.scheduled_start < *next)) {
      next = job.scheduled_start;
    }
  }
  if (!next) {
    return std::nullopt;
  }
  return secondsBetween(at, *next);
}

OutcomeBatchResult MemoryStore::writeOutcomes(
    const std::vector<const runtime::JobOutcome*>& completions,
    const std::vector<OutcomeWrite>& others) {
  // job_attempt's CHECK: a batch with another word is refused whole.
  static const std::set<std::string> kAttemptOutcomes = {"retry",     "failed",  "user_error",
                                                         "suspended", "timeout", "lease_expired",
                                                         "released",  "crashed"};
  for (const OutcomeWrite& w : others) {
    if (kAttemptOutcomes.count(w.attempt_outcome) == 0) {
      throw std::invalid_argument("job_attempt.outcome cannot be \"" + w.attempt_outcome + "\"");
    }
  }
  Clock::time_point at = now();
  OutcomeBatchResult result;
  for (const runtime::JobOutcome* o : completions) {
    Job* job = held(o->job.id, o->job.attempt);
    if (job == nullptr) {
      result.lost.push_back(o->job.id);
      continue;
    }
    job->status = JobStatus::kCompleted;
    job->date_finished = at;
    job->lease_expires.reset();
  }
  for (const OutcomeWrite& w : others) {
    const runtime::JobOutcome& o = *w.outcome;
    Job* job = held(o.job.id, o.job.attempt);
    result.written.push_back(job != nullptr);
    if (job == nullptr) {
      continue;
    }
    job->status = w.status;
    job->log = w.log;
    job->lease_expires.reset();
    if (w.give_back_attempt) {
      --job->attempt_count;
    }
    if (w.status == JobStatus::kWaiting || w.status == JobStatus::kCompleted ||
        w.status == JobStatus::kFailed) {
      job->date_finished = at;
    }
    if (w.status == JobStatus::kWaiting) {
      job->scheduled_start = at + w.requeue_delay.value_or(Duration(0));
    }
    job->attempts.push_back(
        Attempt{o.job.attempt, job->lease_owner.value_or(""), w.attempt_outcome, o.error_type,
                o.message, w.oops ? std::optional<std::string>(w.oops->id) : std::nullopt});
    if (w.oops) {
      oopses_.push_back(*w.oops);
    }
  }
  return result;
}

void MemoryStore::insertOopses(const std::vector<OopsReport>& oopses) {
  for (OopsReport oops : oopses) {
    if (job(oops.job_id) == nullptr) {
      oops.job_id = 0;  // PostgresStore: a job deleted meanwhile leaves no job_id
    }
    oopses_.push_back(std::move(oops));
  }
}

RenewResult MemoryStore::renewLeases(const std::vector<HeldLease>& leases) {
  Clock::time_point at = now();
  RenewResult result;  // no row locks here: nothing is ever busy
  for (const HeldLease& lease : leases) {
    Job* job = held(lease.id, lease.attempt);
    if (job == nullptr) {
      result.lost.push_back(lease.id);
    } else {
      job->lease_expires = at + lease.lease_duration;
    }
  }
  return result;
}

std::vector<runtime::ClaimedJob> MemoryStore::heldByOwner() {
  std::vector<runtime::ClaimedJob> held;
  for (const auto& [id, job] : jobs_) {
    if (job.status == JobStatus::kRunning && job.lease_owner == owner_) {
      runtime::ClaimedJob claimed;
      claimed.id = id;
      claimed.attempt = job.attempt_count;
      claimed.job_type = job.job_type;
      claimed.target = job.target;
      held.push_back(std::move(claimed));
    }
  }
  return held;
}

RescueResult MemoryStore::rescueExpired(const std::vector<RescuePolicy>& policies,
                                        const std::string& oops_prefix, const std::string& hostname,
                                        std::mt19937_64& rng, int limit) {
  Clock::time_point at = now();
  std::vector<Job*> expired;
  for (auto& [id, job] : jobs_) {
    if (job.status == JobStatus::kRunning && job.lease_expires && *job.lease_expires < at) {
      expired.push_back(&job);
    }
  }
  std::stable_sort(expired.begin(), expired.end(), [](const Job* a, const Job* b) {
    return *a->lease_expires < *b->lease_expires;
  });
  if (static_cast<int>(expired.size()) > limit) {
    expired.resize(static_cast<std::size_t>(limit));
  }
  std::sort(expired.begin(), expired.end(),
            [](const Job* a, const Job* b) { return a->id < b->id; });
  RescueResult result;
  for (Job* job : expired) {
    auto policy = std::find_if(policies.begin(), policies.end(),
                               [&](const RescuePolicy& p) { return p.job_type == job->job_type; });
    int max_retries = job->max_retries;
    std::string section = "rescuer";
    if (policy != policies.end()) {
      max_retries = policy->max_retries.value_or(max_retries);
      section = policy->section;
    }
    bool again = job->attempt_count <= max_retries;
    std::string message = "the lease of " + job->lease_owner.value_or("an unknown daemon") +
                          " on attempt " + std::to_string(job->attempt_count) + " expired at " +
                          timeText(*job->lease_expires);
    OopsReport oops;
    oops.id = newOopsId(rng);
    oops.reporter = oops_prefix;
    oops.reporter += "-";
    oops.reporter += section;
    oops.job_id = job->id;
    oops.job_type = job->job_type;
    oops.attempt = job->attempt_count;
    oops.type = "LeaseExpired";
    oops.value = message;
    if (job->lease_owner) {
      oops.vars["lease_owner"] = *job->lease_owner;
    }
    oops.hostname = hostname;
    job->attempts.push_back(Attempt{job->attempt_count, job->lease_owner.value_or(""),
                                    "lease_expired", "LeaseExpired", message, oops.id});
    job->status = again ? JobStatus::kWaiting : JobStatus::kFailed;
    job->lease_expires.reset();
    job->date_finished = at;
    job->log = "LeaseExpired: " + message;
    if (again) {
      job->scheduled_start.reset();
    }
    ++(again ? result.requeued : result.failed);
    oopses_.push_back(oops);
    result.oopses.push_back(std::move(oops));
  }
  return result;
}

std::int64_t MemoryStore::countWaiting(std::int64_t cap) {
  std::int64_t waiting = std::count_if(jobs_.begin(), jobs_.end(), [](const auto& entry) {
    return entry.second.status == JobStatus::kWaiting;
  });
  return std::min(waiting, cap);
}

std::map<std::string, std::int64_t> MemoryStore::countReady(
    const std::vector<std::string>& job_types, std::int64_t cap) {
  Clock::time_point at = now();
  std::map<std::string, std::int64_t> ready;
  for (const std::string& type : job_types) {
    ready[type] = 0;
  }
  for (const auto& [id, job] : jobs_) {
    auto it = ready.find(job.job_type);
    if (it != ready.end() && job.status == JobStatus::kWaiting &&
        (!job.scheduled_start || *job.scheduled_start <= at)) {
      it->second = std::min(it->second + 1, cap);
    }
  }
  return ready;
}

}  // namespace jobd::store
