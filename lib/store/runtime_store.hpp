// RuntimeStore: everything the daemon's runtime asks of the database, as one
// interface: claim, the next scheduled start, outcomes (completions and the
// rest, fenced on attempt and lease owner), lease renewals, the jobs this
// daemon holds, the rescue of expired leases, counts and OOPS rows.
//
// PostgresStore runs JobRepository's SQL on one connection. MemoryStore
// (store/memory_store.hpp) keeps the same rules in memory, under a clock
// that tests move. The conformance suite (tests/db/store_conformance_test.cpp)
// holds both to one contract, so that the runtime's services can be tested
// against the memory store in milliseconds and trust that PostgreSQL
// behaves the same. Calls are made from one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "store/job_repository.hpp"

namespace jobd::store {

// What writing one batch of outcomes came to.
struct OutcomeBatchResult {
  // The completions whose lease this daemon no longer held (nothing was
  // written for them).
  std::vector<std::int64_t> lost;
  // For each other outcome, in order: whether it was written (false when
  // its lease was gone).
  std::vector<bool> written;
};

class RuntimeStore {
 public:
  virtual ~RuntimeStore() = default;

  // The lease owner this store claims and writes as.
  virtual const std::string& owner() const = 0;

  // SPEC §6's claim: at most request.limit ready jobs of the type, by
  // priority then id, at most one per target and none whose target has a
  // RUNNING job, each marked RUNNING under this owner's lease with its
  // attempt counted. json_data comes back only when it fits max_payload.
  virtual ClaimResult claim(const ClaimRequest& request) = 0;
  // Seconds from now to the type's next future scheduled_start, if any;
  // for a limited type (schema 20), or to its parked keys' next token.
  virtual std::optional<double> nextScheduledIn(const std::string& job_type,
                                                bool limited = false) = 0;
  // A type served without a limit: the jobs a limit parked go back to the
  // claim (jobd.release_throttled); returns how many.
  virtual int releaseThrottled(const std::string& job_type) = 0;
  // NOTIFY the daemons of these types: jobs of a limited type ended, and
  // their keys may have room now.
  virtual void notifyJobTypes(const std::vector<std::string>& job_types) = 0;

  // One batch of outcomes, written together: every completion marked
  // COMPLETED, every other outcome written as its OutcomeWrite says (with
  // its attempt row and OOPS), each only while this owner still holds that
  // attempt's lease.
  virtual OutcomeBatchResult writeOutcomes(
      const std::vector<const runtime::JobOutcome*>& completions,
      const std::vector<OutcomeWrite>& others) = 0;
  // OOPS reports that are no attempt's outcome (unsent notices).
  virtual void insertOopses(const std::vector<OopsReport>& oopses) = 0;
  // Running jobs' progress and checkpoints (schema 18), each written only
  // while this owner holds that attempt; returns how many were written.
  virtual int saveProgress(const std::vector<runtime::ProgressReport>& reports) = 0;

  // Extends every lease still held; names the ids that were not, and the
  // ids it left alone because another transaction held their row locked.
  virtual RenewResult renewLeases(const std::vector<HeldLease>& leases) = 0;
  // The jobs RUNNING under this owner's lease.
  virtual std::vector<runtime::ClaimedJob> heldByOwner() = 0;
  // RUNNING jobs whose lease expired, oldest lease first, at most limit:
  // back to WAITING while attempts remain (the policy's max_retries for a
  // type it names, else the row's), else FAILED; each with a
  // `lease_expired` attempt row and a LeaseExpired OOPS.
  virtual RescueResult rescueExpired(const std::vector<RescuePolicy>& policies,
                                     const std::string& oops_prefix, const std::string& hostname,
                                     std::mt19937_64& rng, int limit) = 0;

  // Makes a head of each queue of jobs behind a target that has nothing in
  // front of it, after a race (docs/schema.md, "Jobs of one target");
  // returns how many.
  virtual int promoteStranded() = 0;

  // WAITING jobs, up to cap.
  virtual std::int64_t countWaiting(std::int64_t cap) = 0;
  // Ready jobs of each type given, up to cap per type.
  virtual std::map<std::string, std::int64_t> countReady(const std::vector<std::string>& job_types,
                                                         std::int64_t cap) = 0;
};

// The store on a PostgreSQL connection: JobRepository's statements.
class PostgresStore final : public RuntimeStore {
 public:
  // As JobRepository's constructor.
  PostgresStore(pqxx::connection_base& conn, std::string owner, bool pooled = false,
                std::chrono::milliseconds deadline = std::chrono::milliseconds(0));

  JobRepository& repository() { return repo_; }

  const std::string& owner() const override { return repo_.owner(); }
  ClaimResult claim(const ClaimRequest& request) override { return repo_.claim(request); }
  std::optional<double> nextScheduledIn(const std::string& job_type,
                                        bool limited = false) override {
    return repo_.nextScheduledIn(job_type, limited);
  }
  int releaseThrottled(const std::string& job_type) override {
    return repo_.releaseThrottled(job_type);
  }
  void notifyJobTypes(const std::vector<std::string>& job_types) override {
    repo_.notifyJobTypes(job_types);
  }
  // Completions alone are one statement that commits on its own; with
  // other outcomes, one transaction.
  OutcomeBatchResult writeOutcomes(const std::vector<const runtime::JobOutcome*>& completions,
                                   const std::vector<OutcomeWrite>& others) override;
  void insertOopses(const std::vector<OopsReport>& oopses) override { repo_.insertOopses(oopses); }
  int saveProgress(const std::vector<runtime::ProgressReport>& reports) override {
    return repo_.saveProgress(reports);
  }
  RenewResult renewLeases(const std::vector<HeldLease>& leases) override {
    return repo_.renewLeases(leases);
  }
  std::vector<runtime::ClaimedJob> heldByOwner() override { return repo_.heldByOwner(); }
  RescueResult rescueExpired(const std::vector<RescuePolicy>& policies,
                             const std::string& oops_prefix, const std::string& hostname,
                             std::mt19937_64& rng, int limit) override {
    return repo_.rescueExpired(policies, oops_prefix, hostname, rng, limit);
  }
  int promoteStranded() override { return repo_.promoteStranded(); }
  std::int64_t countWaiting(std::int64_t cap) override { return repo_.countWaiting(cap); }
  std::map<std::string, std::int64_t> countReady(const std::vector<std::string>& job_types,
                                                 std::int64_t cap) override {
    return repo_.countReady(job_types, cap);
  }

 private:
  pqxx::connection_base& conn_;
  JobRepository repo_;
};

}  // namespace jobd::store
