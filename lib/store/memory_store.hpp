// MemoryStore: the RuntimeStore's rules kept in memory, under a clock that
// the caller moves (advance). For the runtime's unit tests: a claim, an
// outcome or an expired lease in microseconds, with no database. The
// conformance suite (tests/db/store_conformance_test.cpp) runs the same
// tests against it and against PostgreSQL.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "store/runtime_store.hpp"

namespace jobd::store {

class MemoryStore final : public RuntimeStore {
 public:
  using Clock = std::chrono::system_clock;

  explicit MemoryStore(std::string owner) : owner_(std::move(owner)) {}

  // What a test enqueues: jobd.enqueue's arguments.
  struct NewJob {
    std::string job_type;
    std::string json_data = "{}";
    int priority = 0;
    std::optional<std::string> target;
    std::optional<Duration> delay;  // scheduled_start = now + delay
    int max_retries = 0;
  };
  std::int64_t enqueue(const NewJob& job);

  struct Attempt {
    int attempt = 0;
    std::string daemon;
    std::string outcome;
    std::string error_type;
    std::string error_message;
    std::optional<std::string> oops_id;
  };
  struct Job {
    std::int64_t id = 0;
    std::string job_type;
    JobStatus status = JobStatus::kWaiting;
    int priority = 0;
    std::optional<std::string> target;
    std::string json_data;
    int attempt_count = 0;
    int max_retries = 0;
    Clock::time_point date_created;
    std::optional<Clock::time_point> scheduled_start;
    std::optional<Clock::time_point> date_started;
    std::optional<Clock::time_point> date_finished;
    std::optional<Clock::time_point> lease_expires;
    std::optional<std::string> lease_owner;
    std::string log;
    std::vector<Attempt> attempts;
    // jobd.job_progress's row.
    std::optional<double> percent;
    std::optional<std::string> message;
    std::optional<std::string> checkpoint;
  };
  // The job as it stands; nullptr when there is none.
  const Job* job(std::int64_t id) const;
  const std::vector<OopsReport>& oopses() const { return oopses_; }

  // Moves the store's clock on (it starts at the system clock's now).
  void advance(Duration by) { offset_ += by; }
  Clock::time_point now() const { return Clock::now() + offset_; }

  // Another daemon's claim of the job: RUNNING under owner's lease.
  void claimAs(std::int64_t id, const std::string& owner, Duration lease);

  const std::string& owner() const override { return owner_; }
  ClaimResult claim(const ClaimRequest& request) override;
  std::optional<double> nextScheduledIn(const std::string& job_type, bool limited = false) override;
  // Limits by key live in PostgreSQL only: a claim with one throws.
  int releaseThrottled(const std::string& /*job_type*/) override { return 0; }
  void notifyJobTypes(const std::vector<std::string>& /*job_types*/) override {}
  OutcomeBatchResult writeOutcomes(const std::vector<const runtime::JobOutcome*>& completions,
                                   const std::vector<OutcomeWrite>& others) override;
  void insertOopses(const std::vector<OopsReport>& oopses) override;
  int saveProgress(const std::vector<runtime::ProgressReport>& reports) override;
  RenewResult renewLeases(const std::vector<HeldLease>& leases) override;
  std::vector<runtime::ClaimedJob> heldByOwner() override;
  RescueResult rescueExpired(const std::vector<RescuePolicy>& policies,
                             const std::string& oops_prefix, const std::string& hostname,
                             std::mt19937_64& rng, int limit) override;
  // No queues behind targets here: the claim reads every WAITING job.
  int promoteStranded() override { return 0; }
  std::int64_t countWaiting(std::int64_t cap) override;
  std::map<std::string, std::int64_t> countReady(const std::vector<std::string>& job_types,
                                                 std::int64_t cap) override;

 private:
  bool ready(const Job& job, Clock::time_point now) const;
  // The fence of every write: RUNNING, this attempt, this owner.
  Job* held(std::int64_t id, int attempt);

  std::string owner_;
  Duration offset_{0};
  std::int64_t next_id_ = 1;
  std::map<std::int64_t, Job> jobs_;  // by id: the claim's order within a priority
  std::vector<OopsReport> oopses_;
};

}  // namespace jobd::store
