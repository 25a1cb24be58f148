// The RuntimeStore's contract (store/runtime_store.hpp), held against both
// implementations: PostgresStore on a real PostgreSQL and MemoryStore. A
// rule of the claim, the fences, the renewals or the rescue that one keeps
// and the other does not fails here, so the runtime's unit tests against
// the memory store can be trusted to say what PostgreSQL would do.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/memory_store.hpp"
#include "store/runtime_store.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using namespace std::chrono_literals;
using testing::TestDatabase;
using NewJob = MemoryStore::NewJob;

constexpr const char* kOwner = "daemon-a";

NewJob of(const std::string& type, int priority = 0, const std::string& json_data = "{}") {
  NewJob job;
  job.job_type = type;
  job.priority = priority;
  job.json_data = json_data;
  return job;
}

// What a test reads back of a job, from either store.
struct JobView {
  JobStatus status = JobStatus::kWaiting;
  int attempt_count = 0;
  bool leased = false;           // lease_expires set
  bool scheduled_later = false;  // scheduled_start in the future
  std::string log;
  std::vector<std::string> attempt_outcomes;  // job_attempt.outcome, by attempt
};

// One implementation under test, with what the contract does not cover:
// enqueueing, reading a job, letting time pass, another daemon's claim.
class StoreUnderTest {
 public:
  virtual ~StoreUnderTest() = default;
  virtual RuntimeStore& store() = 0;
  virtual std::int64_t enqueue(const NewJob& job) = 0;
  virtual JobView view(std::int64_t id) = 0;
  virtual void passTime(Duration by) = 0;
  virtual void claimAs(std::int64_t id, const std::string& owner) = 0;
  virtual int oopsRows() = 0;
};

class Postgres final : public StoreUnderTest {
 public:
  Postgres() : conn_(db_.connect()), store_(*conn_, kOwner) {}
  RuntimeStore& store() override { return store_; }
  std::int64_t enqueue(const NewJob& job) override {
    pqxx::nontransaction txn(*conn_);
    std::string delay = job.delay ? std::to_string(job.delay->count()) : "";
    return txn
        .exec_params1(
            "SELECT jobd.enqueue($1, $2::jsonb, scheduled_start => now() + "
            "($3::bigint * interval '1 millisecond'), priority => $4, target => $5, "
            "max_retries => $6)",
            job.job_type, job.json_data, job.delay ? delay.c_str() : nullptr, job.priority,
            job.target ? job.target->c_str() : nullptr, job.max_retries)[0]
        .as<std::int64_t>();
  }
  JobView view(std::int64_t id) override {
    pqxx::nontransaction txn(*conn_);
    pqxx::row row = txn.exec_params1(
        "SELECT status, attempt_count, lease_expires IS NOT NULL, "
        "COALESCE(scheduled_start > now(), false), COALESCE(log, ''), "
        "(SELECT COALESCE(string_agg(outcome, ',' ORDER BY attempt), '') "
        "   FROM jobd.job_attempt WHERE job_id = j.id) "
        "FROM jobd.job AS j WHERE id = $1",
        id);
    JobView v;
    v.status = static_cast<JobStatus>(row[0].as<int>());
    v.attempt_count = row[1].as<int>();
    v.leased = row[2].as<bool>();
    v.scheduled_later = row[3].as<bool>();
    v.log = row[4].as<std::string>();
    std::string outcomes = row[5].as<std::string>();
    for (std::size_t at = 0; !outcomes.empty() && at != std::string::npos;) {
      std::size_t comma = outcomes.find(',', at);
      v.attempt_outcomes.push_back(outcomes.substr(at, comma - at));
      at = comma == std::string::npos ? comma : comma + 1;
    }
    return v;
  }
  void passTime(Duration by) override { std::this_thread::sleep_for(by); }
  void claimAs(std::int64_t id, const std::string& owner) override {
    db_.scalar(
        "UPDATE jobd.job SET status = 1, attempt_count = attempt_count + 1, "
        "date_started = now(), lease_expires = now() + interval '30 seconds', "
        "lease_owner = '" +
        owner + "' WHERE id = " + std::to_string(id));
  }
  int oopsRows() override { return std::stoi(db_.scalar("SELECT count(*) FROM jobd.oops")); }

 private:
  TestDatabase db_;
  std::unique_ptr<pqxx::connection> conn_;
  PostgresStore store_;
};

class Memory final : public StoreUnderTest {
 public:
  RuntimeStore& store() override { return store_; }
  std::int64_t enqueue(const NewJob& job) override { return store_.enqueue(job); }
  JobView view(std::int64_t id) override {
    const MemoryStore::Job* job = store_.job(id);
    JobView v;
    v.status = job->status;
    v.attempt_count = job->attempt_count;
    v.leased = job->lease_expires.has_value();
    v.scheduled_later = job->scheduled_start && *job->scheduled_start > store_.now();
    v.log = job->log;
    for (const MemoryStore::Attempt& a : job->attempts) {
      v.attempt_outcomes.push_back(a.outcome);
    }
    return v;
  }
  void passTime(Duration by) override { store_.advance(by); }
  void claimAs(std::int64_t id, const std::string& owner) override {
    store_.claimAs(id, owner, 30s);
  }
  int oopsRows() override { return static_cast<int>(store_.oopses().size()); }

 private:
  MemoryStore store_{kOwner};
};

class StoreConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      under_test_ = std::make_unique<Postgres>();
    } else {
      under_test_ = std::make_unique<Memory>();
    }
  }
  RuntimeStore& store() { return under_test_->store(); }
  StoreUnderTest& t() { return *under_test_; }

  std::vector<std::int64_t> claim(int limit, const std::string& type = "noop",
                                  Duration lease = 30s) {
    ClaimRequest request{"section", type, limit, lease};
    std::vector<std::int64_t> ids;
    for (const runtime::ClaimedJob& job : store().claim(request).jobs) {
      ids.push_back(job.id);
    }
    return ids;
  }
  runtime::ClaimedJob claimOne(std::int64_t expected_id, Duration lease = 30s) {
    ClaimResult result = store().claim(ClaimRequest{"section", "noop", 1, lease});
    EXPECT_EQ(result.jobs.size(), 1U);
    if (result.jobs.empty()) {
      return {};
    }
    EXPECT_EQ(result.jobs[0].id, expected_id);
    return result.jobs[0];
  }

  std::unique_ptr<StoreUnderTest> under_test_;
};

TEST_P(StoreConformanceTest, ClaimsByPriorityThenIdUpToItsLimit) {
  std::vector<std::int64_t> ids;
  for (int priority : {0, 5, -3, 0, 1}) {
    ids.push_back(t().enqueue(of("noop", priority)));
  }
  EXPECT_EQ(claim(3), (std::vector<std::int64_t>{ids[2], ids[0], ids[3]}));
  EXPECT_EQ(claim(10), (std::vector<std::int64_t>{ids[4], ids[1]}));
  EXPECT_TRUE(claim(10).empty());
  JobView v = t().view(ids[0]);
  EXPECT_EQ(v.status, JobStatus::kRunning);
  EXPECT_EQ(v.attempt_count, 1);
  EXPECT_TRUE(v.leased);
}

TEST_P(StoreConformanceTest, ClaimsOnlyReadyJobsOfItsType) {
  std::int64_t now_job = t().enqueue(of("noop"));
  t().enqueue(of("other"));
  NewJob later = of("noop");
  later.delay = Duration(3600 * 1000);
  std::int64_t later_job = t().enqueue(later);
  NewJob due = of("noop");
  due.delay = Duration(-60 * 1000);
  std::int64_t due_job = t().enqueue(due);
  std::vector<std::int64_t> claimed = claim(10);
  std::sort(claimed.begin(), claimed.end());
  EXPECT_EQ(claimed, (std::vector<std::int64_t>{now_job, due_job}));
  EXPECT_EQ(t().view(later_job).status, JobStatus::kWaiting);
  EXPECT_TRUE(t().view(later_job).scheduled_later);
  std::optional<double> next = store().nextScheduledIn("noop");
  ASSERT_TRUE(next.has_value());
  EXPECT_GT(*next, 3500);
  EXPECT_LE(*next, 3600);
  EXPECT_FALSE(store().nextScheduledIn("other").has_value());
}

// Due jobs are ordered by priority within a window of the longest due
// (kDueWindow beyond the claim's limit), read in scheduled order: a job due
// more recently than that window waits, whatever its priority.
TEST_P(StoreConformanceTest, DueJobsAreOrderedByPriorityWithinTheWindowOfTheLongestDue) {
  const int jobs = kDueWindow + 40;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < jobs; ++i) {
    NewJob due = of("noop", i == 5 ? -1 : (i == jobs - 1 ? -9 : 0));
    due.delay = Duration(-(jobs - i) * 1000);  // the first enqueued is the longest due
    ids.push_back(t().enqueue(due));
  }
  EXPECT_EQ(claim(1), (std::vector<std::int64_t>{ids[5]}));
  EXPECT_EQ(claim(1), (std::vector<std::int64_t>{ids[0]}));
}

TEST_P(StoreConformanceTest, OneJobPerTargetAndNoneWhoseTargetRuns) {
  NewJob on_x = of("noop");
  on_x.target = "x";
  std::int64_t x1 = t().enqueue(on_x);
  std::int64_t x2 = t().enqueue(on_x);
  std::int64_t free = t().enqueue(of("noop"));
  NewJob on_y = of("noop");
  on_y.target = "y";
  std::int64_t y1 = t().enqueue(on_y);
  ClaimResult first = store().claim(ClaimRequest{"section", "noop", 10});
  std::vector<std::int64_t> ids;
  for (const auto& job : first.jobs) {
    ids.push_back(job.id);
  }
  // Whatever else a claim takes, never two jobs of one target.
  EXPECT_EQ(std::count(ids.begin(), ids.end(), x1), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), x2), 0);
  EXPECT_LE(ids.size(), 3U);
  // While x1 runs, x2 waits, whoever claims.
  std::vector<std::int64_t> rest = claim(10);
  std::vector<std::int64_t> all = ids;
  all.insert(all.end(), rest.begin(), rest.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::int64_t>{x1, free, y1}));
  runtime::JobOutcome done;
  done.job = first.jobs[0];
  ASSERT_EQ(done.job.id, x1);
  EXPECT_TRUE(store().writeOutcomes({&done}, {}).lost.empty());
  EXPECT_EQ(claim(10), (std::vector<std::int64_t>{x2}));
}

TEST_P(StoreConformanceTest, APayloadOverMaxPayloadIsNeverLoaded) {
  std::string big = "{\"a\": \"" + std::string(2000, 'x') + "\"}";
  std::int64_t id = t().enqueue(of("noop", 0, big));
  ClaimRequest request{"section", "noop", 1};
  request.max_payload = 1000;
  ClaimResult result = store().claim(request);
  ASSERT_EQ(result.jobs.size(), 1U);
  EXPECT_EQ(result.jobs[0].id, id);
  EXPECT_FALSE(result.jobs[0].json_data.has_value());
  EXPECT_EQ(result.jobs[0].payload_size, big.size());
}

TEST_P(StoreConformanceTest, CompletionsAreFencedOnAttemptAndOwner) {
  std::int64_t a = t().enqueue(of("noop"));
  std::int64_t b = t().enqueue(of("noop"));
  std::int64_t c = t().enqueue(of("noop"));
  runtime::JobOutcome done_a, stale_b, other_c;
  done_a.job = claimOne(a);
  stale_b.job = claimOne(b);
  stale_b.job.attempt += 1;  // an attempt this daemon does not hold
  other_c.job.id = c;
  other_c.job.attempt = 1;
  t().claimAs(c, "daemon-b");
  OutcomeBatchResult result = store().writeOutcomes({&done_a, &stale_b, &other_c}, {});
  std::sort(result.lost.begin(), result.lost.end());
  EXPECT_EQ(result.lost, (std::vector<std::int64_t>{b, c}));
  EXPECT_EQ(t().view(a).status, JobStatus::kCompleted);
  EXPECT_FALSE(t().view(a).leased);
  EXPECT_EQ(t().view(b).status, JobStatus::kRunning);
  EXPECT_EQ(t().view(c).status, JobStatus::kRunning);
  EXPECT_TRUE(t().view(a).attempt_outcomes.empty());
}

TEST_P(StoreConformanceTest, OtherOutcomesAreWrittenWithTheirAttemptAndFenced) {
  std::int64_t retried = t().enqueue(of("noop"));
  std::int64_t failed = t().enqueue(of("noop"));
  std::int64_t released = t().enqueue(of("noop"));
  std::int64_t lost = t().enqueue(of("noop"));
  std::vector<runtime::JobOutcome> outcomes(4);
  outcomes[0].job = claimOne(retried);
  outcomes[1].job = claimOne(failed);
  outcomes[2].job = claimOne(released);
  outcomes[3].job = claimOne(lost);
  t().claimAs(lost, "daemon-b");  // rescued and claimed elsewhere meanwhile
  for (runtime::JobOutcome& o : outcomes) {
    o.error_type = "SomeError";
    o.message = "went wrong";
  }
  auto write = [](const runtime::JobOutcome& o, JobStatus status, const std::string& outcome,
                  std::optional<Duration> delay, const std::string& log) {
    OutcomeWrite w;
    w.outcome = &o;
    w.status = status;
    w.attempt_outcome = outcome;
    w.requeue_delay = delay;
    w.log = log;
    return w;
  };
  std::vector<OutcomeWrite> writes = {
      write(outcomes[0], JobStatus::kWaiting, "retry", Duration(3600 * 1000), "SomeError"),
      write(outcomes[1], JobStatus::kFailed, "failed", std::nullopt, "SomeError: went wrong"),
      write(outcomes[2], JobStatus::kWaiting, "released", Duration(0), ""),
      write(outcomes[3], JobStatus::kFailed, "failed", std::nullopt, "lost")};
  OopsReport oops;
  oops.id = "OOPS-conformance1";
  oops.reporter = "jobd-section";
  oops.job_id = failed;
  oops.job_type = "noop";
  oops.attempt = 1;
  oops.type = "SomeError";
  oops.value = "went wrong";
  writes[1].oops = oops;
  writes[2].give_back_attempt = true;
  OutcomeBatchResult result = store().writeOutcomes({}, writes);
  EXPECT_EQ(result.written, (std::vector<bool>{true, true, true, false}));

  JobView r = t().view(retried);
  EXPECT_EQ(r.status, JobStatus::kWaiting);
  EXPECT_TRUE(r.scheduled_later);
  EXPECT_FALSE(r.leased);
  EXPECT_EQ(r.attempt_count, 1);
  EXPECT_EQ(r.attempt_outcomes, (std::vector<std::string>{"retry"}));
  JobView f = t().view(failed);
  EXPECT_EQ(f.status, JobStatus::kFailed);
  EXPECT_EQ(f.log, "SomeError: went wrong");
  EXPECT_EQ(f.attempt_outcomes, (std::vector<std::string>{"failed"}));
  EXPECT_EQ(t().oopsRows(), 1);
  // A release gives its attempt back: the next claim is attempt 1 again.
  EXPECT_EQ(t().view(released).attempt_count, 0);
  EXPECT_EQ(claimOne(released).attempt, 1);
  JobView l = t().view(lost);
  EXPECT_EQ(l.status, JobStatus::kRunning);
  EXPECT_TRUE(l.attempt_outcomes.empty());
  // The retry waits for its delay.
  EXPECT_TRUE(claim(10).empty());
}

// job_attempt.outcome is one of SPEC §4.1's words: a batch with another
// is refused whole, and nothing of it is written.
TEST_P(StoreConformanceTest, ABatchWithAnUnknownAttemptOutcomeWritesNothing) {
  std::int64_t a = t().enqueue(of("noop"));
  std::int64_t b = t().enqueue(of("noop"));
  runtime::JobOutcome done, odd;
  done.job = claimOne(a);
  odd.job = claimOne(b);
  OutcomeWrite w;
  w.outcome = &odd;
  w.status = JobStatus::kFailed;
  w.attempt_outcome = "exploded";
  EXPECT_ANY_THROW(store().writeOutcomes({&done}, {w}));
  EXPECT_EQ(t().view(a).status, JobStatus::kRunning);
  EXPECT_EQ(t().view(b).status, JobStatus::kRunning);
  EXPECT_TRUE(t().view(b).attempt_outcomes.empty());
}

TEST_P(StoreConformanceTest, RenewalsExtendHeldLeasesAndNameTheRest) {
  std::int64_t a = t().enqueue(of("noop"));
  std::int64_t b = t().enqueue(of("noop"));
  std::int64_t c = t().enqueue(of("noop"));
  runtime::ClaimedJob ja = claimOne(a, 300ms);
  runtime::ClaimedJob jb = claimOne(b, 300ms);
  t().claimAs(c, "daemon-b");
  RenewResult renewed =
      store().renewLeases({{a, ja.attempt, 60s}, {b, jb.attempt + 1, 60s}, {c, 1, 60s}});
  EXPECT_TRUE(renewed.busy.empty());
  std::vector<std::int64_t> lost = renewed.lost;
  std::sort(lost.begin(), lost.end());
  EXPECT_EQ(lost, (std::vector<std::int64_t>{b, c}));
  std::vector<runtime::ClaimedJob> held = store().heldByOwner();
  std::vector<std::int64_t> held_ids;
  held_ids.reserve(held.size());
  for (const auto& job : held) {
    held_ids.push_back(job.id);
  }
  std::sort(held_ids.begin(), held_ids.end());
  EXPECT_EQ(held_ids, (std::vector<std::int64_t>{a, b}));
  // Past the claim's 300 ms lease: a's renewed lease stands, b's expired.
  t().passTime(500ms);
  std::mt19937_64 rng(1);
  RescueResult rescued = store().rescueExpired({}, "jobd", "host", rng, 500);
  EXPECT_EQ(rescued.requeued + rescued.failed, 1);
  ASSERT_EQ(rescued.oopses.size(), 1U);
  EXPECT_EQ(rescued.oopses[0].job_id, b);
  EXPECT_EQ(t().view(a).status, JobStatus::kRunning);
}

TEST_P(StoreConformanceTest, TheRescueRequeuesWhileAttemptsRemainThenFails) {
  NewJob once_more = of("noop");
  once_more.max_retries = 1;
  std::int64_t job = t().enqueue(once_more);
  NewJob generous = of("strict");
  generous.max_retries = 5;
  std::int64_t strict = t().enqueue(generous);
  claimOne(job, 200ms);
  claim(1, "strict", 200ms);
  t().passTime(400ms);
  std::mt19937_64 rng(1);
  // The section serving "strict" allows no retry, whatever the row says.
  std::vector<RescuePolicy> policies = {{"strict", "strict-section", 0}};
  RescueResult first = store().rescueExpired(policies, "jobd", "host", rng, 500);
  EXPECT_EQ(first.requeued, 1);
  EXPECT_EQ(first.failed, 1);
  JobView v = t().view(job);
  EXPECT_EQ(v.status, JobStatus::kWaiting);
  EXPECT_EQ(v.attempt_outcomes, (std::vector<std::string>{"lease_expired"}));
  EXPECT_EQ(v.log.rfind("LeaseExpired: the lease of daemon-a on attempt 1 expired at ", 0), 0U)
      << v.log;
  JobView s = t().view(strict);
  EXPECT_EQ(s.status, JobStatus::kFailed);
  for (const OopsReport& oops : first.oopses) {
    EXPECT_EQ(oops.type, "LeaseExpired");
    EXPECT_EQ(oops.reporter, oops.job_id == strict ? "jobd-strict-section" : "jobd-rescuer");
    EXPECT_EQ(oops.vars.at("lease_owner"), kOwner);
  }
  EXPECT_EQ(t().oopsRows(), 2);

  EXPECT_EQ(claimOne(job, 200ms).attempt, 2);
  t().passTime(400ms);
  RescueResult second = store().rescueExpired({}, "jobd", "host", rng, 500);
  EXPECT_EQ(second.failed, 1);
  EXPECT_EQ(t().view(job).status, JobStatus::kFailed);
  EXPECT_EQ(t().view(job).attempt_outcomes,
            (std::vector<std::string>{"lease_expired", "lease_expired"}));
}

TEST_P(StoreConformanceTest, CountsAreCapped) {
  for (int i = 0; i < 5; ++i) {
    t().enqueue(of("noop"));
  }
  NewJob later = of("other");
  later.delay = Duration(3600 * 1000);
  t().enqueue(later);
  t().enqueue(of("other"));
  EXPECT_EQ(store().countWaiting(100), 7);
  EXPECT_EQ(store().countWaiting(3), 3);
  std::map<std::string, std::int64_t> ready = store().countReady({"noop", "other", "none"}, 4);
  EXPECT_EQ(ready, (std::map<std::string, std::int64_t>{{"noop", 4}, {"other", 1}, {"none", 0}}));
  claim(2);
  EXPECT_EQ(store().countWaiting(100), 5);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformanceTest, ::testing::Values("postgres", "memory"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace jobd::store
