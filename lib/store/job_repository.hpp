// JobRepository: the daemon's SQL on its own connection (the database
// thread's): the batch claim, fenced completion of many jobs at once, the
// other fenced outcomes with their attempt and OOPS rows, and the next
// scheduled start. Statements are prepared once per connection, unless it
// may lead to a transaction pooler (PgBouncer). Also
// completeInJobTransaction(), which a worker thread calls on the job's own
// connection so that a handler's work and its COMPLETED mark commit together.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <vector>

#include "core/duration.hpp"
#include "core/job_status.hpp"
#include "core/oops.hpp"
#include "runtime/job_outcome.hpp"

namespace jobd::store {

// How many due scheduled jobs a claim orders by priority beyond the ones
// it takes: it reads the longest due first (jobd.claim_ready, migration
// 0011, and MemoryStore::claim keep the two in step).
inline constexpr int kDueWindow = 1000;

// A fleet-wide limit on a type's jobs by key (schema 20, docs/schema.md
// "Limits"; fairness and ageing, schema 21): the key (kind: type, target, target_prefix or data,
// with its separator or field), the most running at once (0: no cap), and a token bucket of `rate`
// starts per `per`, at most `burst` at once (rate 0: none).
struct ClaimLimit {
  std::string key_kind = "type";
  std::string key_arg;
  int max_running = 0;
  int rate = 0;
  Duration per = std::chrono::seconds(1);
  int burst = 0;
  // Schema 21: the keys take the slots in turn; jobs that waited `age` go
  // first (0: no ageing).
  bool fair = false;
  Duration age{0};
};

struct ClaimRequest {
  std::string section;
  std::string job_type;
  int limit = 1;
  Duration lease_duration = std::chrono::seconds(30);
  std::uint64_t max_payload = 1024ULL * 1024;
  // Set for a limited type: the claim is jobd.claim_limited.
  std::optional<ClaimLimit> key_limit = std::nullopt;
};

struct ClaimResult {
  std::vector<runtime::ClaimedJob> jobs;
};

// How a non-COMPLETED outcome is written, decided by the recorder.
struct OutcomeWrite {
  const runtime::JobOutcome* outcome = nullptr;
  JobStatus status = JobStatus::kFailed;  // the job's new status
  std::string attempt_outcome;            // job_attempt.outcome
  std::optional<Duration> requeue_delay;  // set for a retry
  std::string log;                        // jobd.job.log
  std::optional<OopsReport> oops;         // set when an OOPS is recorded
  // A release (SPEC §8): the attempt is given back, so attempt_count
  // goes down by one and the next claim is this attempt again.
  bool give_back_attempt = false;
  // A rate-limited job (schema 20): its key under its type's limit starts
  // nothing for this long (jobd.limit_block).
  std::optional<Duration> block_key;
};

// A lease this daemon holds, as the renewal sends it.
struct HeldLease {
  std::int64_t id = 0;
  int attempt = 0;
  Duration lease_duration = std::chrono::seconds(30);
};

// What a renewal did not renew: leases this owner no longer holds, and
// rows another transaction held locked (neither renewed nor known lost).
struct RenewResult {
  std::vector<std::int64_t> lost;
  std::vector<std::int64_t> busy;
};

// What the rescuer knows of a job type it serves.
struct RescuePolicy {
  std::string job_type;
  std::string section;
  std::optional<int> max_retries;  // the section's override
};

struct RescueResult {
  int requeued = 0;
  int failed = 0;
  std::vector<OopsReport> oopses;  // one per rescued job, as written
};

class JobRepository {
 public:
  // pooled: the connection may lead to a transaction pooler, so no
  // statement is prepared by name, and each transaction that spans several
  // statements gets `deadline` as its statement and idle-in-transaction
  // timeouts (limit()).
  JobRepository(pqxx::connection_base& conn, std::string owner, bool pooled = false,
                std::chrono::milliseconds deadline = std::chrono::milliseconds(0));

  // The first statement of a transaction that spans several: through a
  // pooler, its server-side deadlines (store::limitTransaction), so that a
  // transaction whose client went away never holds its rows for ever.
  // Nothing on a direct connection, whose session has them already.
  void limit(pqxx::transaction_base& txn) const;

  // One statement, committed on its own; tried up to kClaimTries times
  // when it meets a racing daemon (store::worthRetrying).
  static constexpr int kClaimTries = 4;
  ClaimResult claim(const ClaimRequest& request);
  // Seconds from now to the type's next future scheduled_start, if any.
  std::optional<double> nextScheduledIn(const std::string& job_type, bool limited = false);
  // jobd.release_throttled (schema 20): a type no longer limited gets the
  // jobs its limit parked back; returns how many.
  int releaseThrottled(const std::string& job_type);
  void notifyJobTypes(const std::vector<std::string>& job_types);
  // Parked jobs of each type given (schema 20), up to cap per type.
  std::map<std::string, std::int64_t> countThrottled(const std::vector<std::string>& job_types,
                                                     std::int64_t cap);

  // Marks every (id, attempt) COMPLETED if this daemon still holds it;
  // returns the ids that were not (their lease was lost). One statement:
  // `txn` may be a nontransaction when nothing else is written with it.
  std::vector<std::int64_t> completeMany(pqxx::transaction_base& txn,
                                         const std::vector<const runtime::JobOutcome*>& jobs);

  // Writes one other outcome, fenced; false when the lease was lost (then
  // nothing is written).
  bool writeOutcome(pqxx::work& txn, const OutcomeWrite& write);

  // Records OOPS reports that are no attempt's outcome (notices that could
  // not be sent, SPEC §5) in one statement, one round trip.
  void insertOopses(const std::vector<OopsReport>& oopses);
  // Running jobs' progress (schema 18), each fenced on its attempt; returns
  // how many were written. A report the database refuses is logged
  // (PROGRESS_WRITE_FAILED) and costs only itself; a lost connection throws.
  int saveProgress(const std::vector<runtime::ProgressReport>& reports);
  // The quiet enqueue (migration 9): on a session of its own, after a
  // claim of job_type came back short. asleep: whether this session holds
  // the type's "asleep" lock; returns whether it holds it now.
  bool sleepOn(const std::string& job_type, bool asleep);
  // Lets go of the "asleep" lock that sleepOn took.
  void wakeFrom(const std::string& job_type);
  // One round trip: is the session still there?
  void ping();
  // jobd.promote_stranded (schema 12): heads for queues left without one.
  int promoteStranded();
  // WAITING jobs, counted up to cap (for STATUS=; cheap on a big table).
  std::int64_t countWaiting(std::int64_t cap);
  // Ready jobs of each type, counted up to cap per type (the metrics'
  // periodic estimate). Every type given is in the answer.
  std::map<std::string, std::int64_t> countReady(const std::vector<std::string>& job_types,
                                                 std::int64_t cap);
  // The jobs RUNNING under this daemon's lease (from job_lease_idx: the
  // RUNNING rows only), with their attempt and type.
  std::vector<runtime::ClaimedJob> heldByOwner();

  // Extends every lease in one statement; returns the ids whose lease this
  // daemon no longer holds.
  RenewResult renewLeases(const std::vector<HeldLease>& leases);

  // SPEC §6's rescue, for every job type: RUNNING jobs whose lease expired
  // go back to WAITING when attempts remain (the policy's max_retries when
  // this daemon serves the type, else the row's), else FAILED; each gets a
  // `lease_expired` attempt row and an OOPS, whose id is drawn from rng. At
  // most `limit` per call.
  RescueResult rescueExpired(const std::vector<RescuePolicy>& policies,
                             const std::string& oops_prefix, const std::string& hostname,
                             std::mt19937_64& rng, int limit = 500);

  const std::string& owner() const { return owner_; }

  // The claim's SQL text, for the benchmark's pgbench replay of it
  // (bench/README.md). Parameters: job type, limit, lease, owner, max_payload.
  static const char* claimSql();
  // countWaiting()'s SQL, for the test that holds it to its indexes.
  // Parameter: the cap.
  static const char* countWaitingSql();

  // Used on the job's own connection: the fenced COMPLETED mark in the
  // job's transaction. False when the lease is gone (roll back then).
  // With a result, writes it too (schema 16).
  static bool completeInJobTransaction(pqxx::work& txn, const runtime::ClaimedJob& job,
                                       const std::string& owner,
                                       const std::optional<std::string>& result = std::nullopt);
  // The results of jobs this transaction marked COMPLETED (those of
  // `completed` that have one).
  void writeResults(pqxx::transaction_base& txn,
                    const std::vector<const runtime::JobOutcome*>& completed);

 private:
  void insertOops(pqxx::transaction_base& txn, const OopsReport& oops);
  template <class... Args>
  pqxx::result run(pqxx::transaction_base& txn, const char* sql, Args&&... args);

  pqxx::connection_base& conn_;
  std::string owner_;
  bool pooled_;
  std::chrono::milliseconds deadline_;
};

}  // namespace jobd::store
