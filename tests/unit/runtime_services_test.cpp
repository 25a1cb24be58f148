// The runtime's services against the memory store (store/memory_store.hpp):
// the outcome policy, the lease keeper and the rescuer, on a DatabaseThread
// whose store is a MemoryStore, with time moved by the test instead of
// waited for. The conformance suite (tests/db/store_conformance_test.cpp)
// holds MemoryStore to what PostgreSQL does, so these run in milliseconds
// and still say how the daemon treats a job.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "registry.hpp"
#include "runtime/connect_hold.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/job_executor.hpp"
#include "runtime/lease_keeper.hpp"
#include "runtime/lease_rescuer.hpp"
#include "runtime/metrics.hpp"
#include "runtime/notice_sender.hpp"
#include "runtime/outcome_recorder.hpp"
#include "runtime/supervisor.hpp"
#include "store/memory_store.hpp"

namespace jobd::runtime {
namespace {

using namespace std::chrono_literals;
using store::MemoryStore;

template <class Condition>
bool waitFor(Condition condition, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  return condition();
}

template <class Condition>
bool runUntil(boost::asio::io_context& io, Condition condition) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!condition() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) {
      io.restart();  // it ran out of work; a worker may post more
    }
    io.run_for(5ms);
  }
  return condition();
}

// A memory store served by a database thread. Every look at the store goes
// through that thread, as the services' own calls do.
class MemoryDatabase {
 public:
  MemoryDatabase() : db_(store_) { db_.start(); }
  ~MemoryDatabase() { db_.stop(); }
  DatabaseThread& thread() { return db_; }

  template <class F>
  auto on(F work) -> decltype(work(std::declval<MemoryStore&>())) {
    using Result = decltype(work(std::declval<MemoryStore&>()));
    std::promise<Result> done;
    db_.post([&] {
      if constexpr (std::is_void_v<Result>) {
        work(store_);
        done.set_value();
      } else {
        done.set_value(work(store_));
      }
    });
    return done.get_future().get();
  }

  ClaimedJob claim(const std::string& type, Duration lease = 30s) {
    return on([&](MemoryStore& s) {
      std::vector<ClaimedJob> jobs = s.claim(store::ClaimRequest{type, type, 1, lease}).jobs;
      EXPECT_EQ(jobs.size(), 1U);
      return jobs.empty() ? ClaimedJob{} : jobs[0];
    });
  }
  std::int64_t enqueue(const std::string& type) {
    return on([&](MemoryStore& s) {
      MemoryStore::NewJob job;
      job.job_type = type;
      return s.enqueue(job);
    });
  }
  MemoryStore::Job job(std::int64_t id) {
    return on([&](MemoryStore& s) { return *s.job(id); });
  }

 private:
  MemoryStore store_{"owner"};
  DatabaseThread db_;
};

std::shared_ptr<const config::Config> configOf(const std::string& text) {
  return config::Config::fromText(text, "test.conf", jobtypes::handlerCatalog());
}

JobOutcome outcomeOf(const ClaimedJob& job, OutcomeKind kind) {
  JobOutcome o;
  o.job = job;
  o.kind = kind;
  o.error_type = kind == OutcomeKind::kUserError ? "UserError" : "RetryError";
  o.message = "went wrong";
  return o;
}

class OutcomeRecorderTest : public ::testing::Test {
 protected:
  OutcomeRecorderTest()
      : recorder_(db_.thread(), metrics_, "host", nullptr),
        config_(configOf("[fail]\nmax_retries: 1\nretry_delay: 10s\n")) {
    recorder_.onFailed([this](const JobOutcome& o, const std::optional<std::string>& oops,
                              const std::shared_ptr<const config::Config>&) {
      noticed_.push_back(std::to_string(o.job.id) + ":" + oops.value_or("user error"));
    });
  }
  void record(const ClaimedJob& job, OutcomeKind kind) {
    recorder_.record(outcomeOf(job, kind), config_);
    ASSERT_TRUE(waitFor([&] { return recorder_.pending() == 0; }));
  }

  MemoryDatabase db_;
  Metrics metrics_;
  OutcomeRecorder recorder_;
  std::shared_ptr<const config::Config> config_;
  std::vector<std::string> noticed_;  // written on the database thread, read after a wait
};

// A retry while attempts remain goes back to WAITING after retry_delay; the
// last attempt's retry is a failure with an OOPS, and its notice is sent.
TEST_F(OutcomeRecorderTest, RetriesWhileAttemptsRemainThenFailsWithAnOops) {
  std::int64_t id = db_.enqueue("fail");
  record(db_.claim("fail"), OutcomeKind::kRetry);
  MemoryStore::Job job = db_.job(id);
  EXPECT_EQ(job.status, JobStatus::kWaiting);
  ASSERT_TRUE(job.scheduled_start.has_value());
  EXPECT_EQ(recorder_.counters().retried.load(), 1U);
  // Not ready before its delay; ready after.
  EXPECT_TRUE(db_.on([](MemoryStore& s) {
                   return s.claim(store::ClaimRequest{"fail", "fail", 1, 30s}).jobs;
                 })
                  .empty());
  db_.on([](MemoryStore& s) { s.advance(11s); });
  ClaimedJob second = db_.claim("fail");
  EXPECT_EQ(second.attempt, 2);
  record(second, OutcomeKind::kRetry);
  job = db_.job(id);
  EXPECT_EQ(job.status, JobStatus::kFailed);
  ASSERT_EQ(job.attempts.size(), 2U);
  EXPECT_EQ(job.attempts[0].outcome, "retry");
  EXPECT_EQ(job.attempts[1].outcome, "failed");
  ASSERT_TRUE(job.attempts[1].oops_id.has_value());
  EXPECT_EQ(recorder_.counters().failed.load(), 1U);
  std::vector<OopsReport> oopses = db_.on([](MemoryStore& s) { return s.oopses(); });
  ASSERT_EQ(oopses.size(), 1U);
  EXPECT_EQ(oopses[0].type, "RetryError");
  EXPECT_EQ(noticed_, std::vector<std::string>{std::to_string(id) + ":" + oopses[0].id});
}

// A user error fails the job at once, with no OOPS, and is noticed.
TEST_F(OutcomeRecorderTest, AUserErrorFailsWithoutAnOops) {
  std::int64_t id = db_.enqueue("fail");
  record(db_.claim("fail"), OutcomeKind::kUserError);
  MemoryStore::Job job = db_.job(id);
  EXPECT_EQ(job.status, JobStatus::kFailed);
  EXPECT_EQ(job.log, "went wrong");
  EXPECT_TRUE(db_.on([](MemoryStore& s) { return s.oopses(); }).empty());
  EXPECT_EQ(noticed_, std::vector<std::string>{std::to_string(id) + ":user error"});
}

// A released job goes back to WAITING and gets its attempt back.
TEST_F(OutcomeRecorderTest, AReleasedJobKeepsItsAttempts) {
  std::int64_t id = db_.enqueue("fail");
  record(db_.claim("fail"), OutcomeKind::kReleased);
  MemoryStore::Job job = db_.job(id);
  EXPECT_EQ(job.status, JobStatus::kWaiting);
  EXPECT_EQ(job.attempt_count, 0);
  EXPECT_EQ(recorder_.counters().released.load(), 1U);
  EXPECT_EQ(db_.claim("fail").attempt, 1);
}

// The outcome of an attempt whose lease has gone (rescued and claimed by
// another daemon) writes nothing: the other daemon's attempt is untouched.
TEST_F(OutcomeRecorderTest, AnOutcomeForALostLeaseWritesNothing) {
  std::int64_t id = db_.enqueue("fail");
  ClaimedJob mine = db_.claim("fail", 30s);
  db_.on([&](MemoryStore& s) {
    s.advance(31s);
    std::mt19937_64 rng(1);
    s.rescueExpired({}, "OOPS", "host", rng, 10);
    s.claimAs(id, "other", 30s);
  });
  record(mine, OutcomeKind::kCompleted);
  MemoryStore::Job job = db_.job(id);
  EXPECT_EQ(job.status, JobStatus::kRunning);
  EXPECT_EQ(job.lease_owner, "other");
  EXPECT_EQ(job.attempt_count, 2);
  EXPECT_EQ(recorder_.counters().lease_lost.load(), 1U);
  EXPECT_EQ(recorder_.counters().completed.load(), 0U);
}

// The lease keeper renews every lease it holds, and stops the job whose
// lease another daemon has taken.
// A connection that went silent on work begun at t makes every connection
// whose last answer came before t untrusted, and none that answered since;
// an earlier silence noted later does not move that moment back.
TEST(SilentConnectionTest, OnlyConnectionsThatHaveNotAnsweredSinceAreReplaced) {
  auto now = std::chrono::steady_clock::now();
  EXPECT_TRUE(answeredSinceSilence(now - 1h));  // nothing went silent yet
  noteSilentConnection(now);
  EXPECT_FALSE(answeredSinceSilence(now - 1ms));
  EXPECT_TRUE(answeredSinceSilence(now));
  EXPECT_TRUE(answeredSinceSilence(now + 1ms));
  noteSilentConnection(now - 1s);
  EXPECT_FALSE(answeredSinceSilence(now - 1ms));
  EXPECT_TRUE(answeredSinceSilence(now + 1ms));
  noteSilentConnection(now + 1s);
  EXPECT_FALSE(answeredSinceSilence(now + 1ms));
}

TEST(LeaseKeeperMemoryTest, RenewsHeldLeasesAndStopsTheOnesLost) {
  MemoryDatabase db;
  boost::asio::io_context io;
  std::int64_t kept = db.enqueue("noop");
  std::int64_t lost = db.enqueue("noop");
  ClaimedJob kept_job = db.claim("noop", 30s);
  ClaimedJob lost_job = db.claim("noop", 30s);
  ASSERT_EQ(kept_job.id, kept);
  auto kept_token = std::make_shared<CancellationToken>();
  auto lost_token = std::make_shared<CancellationToken>();
  LeaseKeeper keeper(io, db.thread(), 10ms);
  keeper.add(kept_job, 30s, kept_token);
  keeper.add(lost_job, 30s, lost_token);
  // 20 s pass: the first lease has 10 s left. The other daemon takes the
  // second job (an operator suspended and resumed it, say).
  db.on([&](MemoryStore& s) {
    s.advance(20s);
    s.claimAs(lost, "other", 30s);
  });
  auto expires = [&] { return *db.job(kept).lease_expires; };
  MemoryStore::Clock::time_point before = expires();
  EXPECT_TRUE(keeper.connect());  // the store answers
  keeper.start();
  ASSERT_TRUE(runUntil(io, [&] { return lost_token->cancelled(); }));
  EXPECT_FALSE(kept_token->cancelled());
  EXPECT_TRUE(keeper.healthy());
  // Renewed for 30 s from the store's now (20 s on, and the real time the
  // test took).
  EXPECT_GE(expires() - before, 20s);
  EXPECT_LT(expires() - before, 25s);
  EXPECT_FALSE(keeper.holds(keyOf(lost_job)));
  EXPECT_TRUE(keeper.holds(keyOf(kept_job)));
  EXPECT_EQ(db.job(lost).lease_owner, "other");
  keeper.stop();
}

// The rescuer requeues a job whose lease expired (its daemon died) on its
// interval, with a lease_expired attempt row and a LeaseExpired OOPS; a
// job whose lease has not expired is left alone.
TEST(LeaseRescuerMemoryTest, RescuesExpiredLeasesOnItsInterval) {
  MemoryDatabase db;
  boost::asio::io_context io;
  std::int64_t dead = db.enqueue("noop");
  std::int64_t alive = db.enqueue("noop");
  db.on([&](MemoryStore& s) {
    s.claimAs(dead, "dead-daemon", 10s);
    s.claimAs(alive, "live-daemon", 60s);
    s.advance(11s);
  });
  LeaseRescuer rescuer(io, db.thread(), 10ms, {store::RescuePolicy{"noop", "noop", 1}}, "OOPS",
                       "host");
  rescuer.start();
  ASSERT_TRUE(runUntil(io, [&] { return rescuer.rescued() == 1; }));
  rescuer.stop();
  MemoryStore::Job job = db.job(dead);
  EXPECT_EQ(job.status, JobStatus::kWaiting);
  ASSERT_EQ(job.attempts.size(), 1U);
  EXPECT_EQ(job.attempts[0].outcome, "lease_expired");
  std::vector<OopsReport> oopses = db.on([](MemoryStore& s) { return s.oopses(); });
  ASSERT_EQ(oopses.size(), 1U);
  EXPECT_EQ(oopses[0].type, "LeaseExpired");
  EXPECT_EQ(oopses[0].job_id, dead);
  EXPECT_EQ(db.job(alive).status, JobStatus::kRunning);
}

// A notice handed to the sender on the outcomes thread itself while the
// sender stops (a batch being written at the end of a drain): its
// NoticeError record is written at once. Before, it was posted behind the
// stop's wait, and the stop of the outcomes thread, which follows, dropped
// it (issue 18 review).
TEST(NoticeSenderMemoryTest, ANoticeSentOnTheOutcomesThreadDuringTheStopIsRecorded) {
  MemoryStore store{"owner"};
  DatabaseThread db(store);
  db.start();
  std::int64_t id = [&] {
    MemoryStore::NewJob job;
    job.job_type = "fail";
    return store.enqueue(job);  // before the thread has any work
  }();
  NoticeSender sender(db, "host");
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  db.post([&, released] {
    released.wait();  // a batch still being written
    Notice notice;
    notice.job_id = id;
    notice.attempt = 1;
    notice.job_type = "fail";
    notice.section = "fail";
    notice.to = {"a@example.com"};
    notice.config = configOf("");
    sender.send(std::move(notice));
  });
  std::thread stopping([&] { sender.stop(); });
  std::this_thread::sleep_for(200ms);  // the stop waits behind the batch
  release.set_value();
  stopping.join();
  db.stop();  // drops whatever is still queued, as the daemon's stop does
  ASSERT_EQ(store.oopses().size(), 1U);
  EXPECT_EQ(store.oopses()[0].type, "NoticeError");
  EXPECT_EQ(store.oopses()[0].job_id, id);
}

// The supervisor with real worker threads and the sleep handler, against
// the memory store: what runs, times out, gets stuck and is released.
class SupervisorMemoryTest : public ::testing::Test {
 protected:
  SupervisorMemoryTest()
      : config_(configOf("[sleep]\nconcurrency: 1\ntimeout: 100ms\nkill_grace: 100ms\n"
                         "drills: true\n")),
        section_(config_->section("sleep")),
        source_(jobtypes::makeJobSource(*section_, config_->mail())),
        recorder_(db_.thread(), metrics_, "host", nullptr),
        leases_(io_, db_.thread(), 10s),
        supervisor_(io_, leases_, executor_, recorder_, pool_, 2) {
    supervisor_.onReturned([this](std::vector<Supervisor::Returned> batch) {
      for (Supervisor::Returned& r : batch) {
        returned_.push_back(std::move(r));
      }
    });
    supervisor_.onAllStuck([this](const std::string& what) { all_stuck_.push_back(what); });
    supervisor_.concurrencyOf([this](const std::string&) { return concurrency_; });
  }
  ~SupervisorMemoryTest() override {
    pool_.join();
    // A test that ends on pending() alone (or on a failed wait) may leave
    // a batch's last steps running on the database thread, which pending()
    // drops before: the thread stops before the recorder it runs in goes.
    db_.thread().stop();
  }

  ClaimedJob startSleep(const std::string& payload) {
    std::int64_t id = db_.on([&](MemoryStore& s) {
      MemoryStore::NewJob job;
      job.job_type = "sleep";
      job.json_data = payload;
      return s.enqueue(job);
    });
    ClaimedJob job = db_.claim("sleep");
    EXPECT_EQ(job.id, id);
    job.section = "sleep";
    job.claimed_at = std::chrono::steady_clock::now();
    supervisor_.start(Supervisor::Run{config_, section_, source_, nullptr}, job);
    return job;
  }

  MemoryDatabase db_;
  boost::asio::io_context io_;
  std::shared_ptr<const config::Config> config_;
  const config::SectionConfig* section_;
  std::shared_ptr<const IJobSource> source_;
  Metrics metrics_;
  OutcomeRecorder recorder_;
  LeaseKeeper leases_;
  JobExecutor executor_{"", "owner"};
  boost::asio::thread_pool pool_{2};
  Supervisor supervisor_;
  std::vector<Supervisor::Returned> returned_;
  std::vector<std::string> all_stuck_;
  int concurrency_ = 1;  // the section's, as a reload may change it
};

// A thread job that ignores its cancellation is stuck kill_grace after its
// timeout, holds its slot (every slot of the section, reported once) until
// it returns, and comes back as a timeout.
TEST_F(SupervisorMemoryTest, AJobThatIgnoresItsTimeoutIsStuckUntilItReturns) {
  startSleep(R"({"ms": 700, "ignore_cancel": true})");
  EXPECT_EQ(supervisor_.running(), 1);
  EXPECT_EQ(supervisor_.poolRunning(), 1);
  ASSERT_TRUE(runUntil(io_, [&] { return !all_stuck_.empty(); }));
  EXPECT_EQ(supervisor_.stuck(), 1);
  EXPECT_EQ(all_stuck_, std::vector<std::string>{"every slot of section [sleep] is stuck"});
  ASSERT_TRUE(runUntil(io_, [&] { return !returned_.empty(); }));
  EXPECT_EQ(supervisor_.stuck(), 0);
  EXPECT_EQ(supervisor_.running(), 0);
  EXPECT_EQ(supervisor_.poolRunning(), 0);
  EXPECT_FALSE(returned_[0].released);
  EXPECT_EQ(returned_[0].outcome.kind, OutcomeKind::kTimeout);
  EXPECT_EQ(all_stuck_.size(), 1U);
}

// Whether every slot is stuck is judged against the section's concurrency
// as configured now: a reload that raised it leaves free slots, and no
// restart is asked for (review: the claim-time copy was used).
TEST_F(SupervisorMemoryTest, AStuckJobIsJudgedAgainstTheConcurrencyConfiguredNow) {
  concurrency_ = 2;
  startSleep(R"({"ms": 700, "ignore_cancel": true})");
  ASSERT_TRUE(runUntil(io_, [&] { return !returned_.empty(); }));
  EXPECT_TRUE(all_stuck_.empty());
}

// At the end of a drain every running job is released: the release is
// written at once (the attempt given back), the job is cancelled, and what
// it returns comes back marked released, not to be written.
TEST_F(SupervisorMemoryTest, ReleaseAllGivesTheAttemptBackAndStopsTheJob) {
  ClaimedJob job = startSleep(R"({"ms": 60000})");
  EXPECT_EQ(supervisor_.releaseAll(config_), 1);
  EXPECT_EQ(supervisor_.releaseAll(config_), 0);  // once
  ASSERT_TRUE(runUntil(io_, [&] { return !returned_.empty(); }));
  EXPECT_TRUE(returned_[0].released);
  ASSERT_TRUE(waitFor([&] { return recorder_.pending() == 0; }));
  MemoryStore::Job row = db_.job(job.id);
  EXPECT_EQ(row.status, JobStatus::kWaiting);
  EXPECT_EQ(row.attempt_count, 0);
  EXPECT_EQ(recorder_.counters().released.load(), 1U);
}

// A later attempt of a job started here supersedes the earlier one, which
// still runs: what the earlier one returns is fenced out (lease_lost), and
// the job is counted once.
TEST_F(SupervisorMemoryTest, ALaterAttemptSupersedesTheEarlierOne) {
  ClaimedJob first = startSleep(R"({"ms": 50})");
  ClaimedJob second = first;
  second.attempt = first.attempt + 1;
  supervisor_.start(Supervisor::Run{config_, section_, source_, nullptr}, second);
  EXPECT_EQ(supervisor_.running(), 2);
  EXPECT_EQ(supervisor_.runningByJobType(), (std::map<std::string, int>{{"sleep", 1}}));
  ASSERT_TRUE(runUntil(io_, [&] { return returned_.size() == 2; }));
  for (const Supervisor::Returned& r : returned_) {
    EXPECT_EQ(r.outcome.lease_lost, r.outcome.job.attempt == first.attempt)
        << r.outcome.job.attempt;
  }
}

// A section whose jobs cannot connect waits 5 s, then 10 s, doubling up to
// 5 min, between tries; the jobs of one burst count once; a job that ran
// (not released) ends the hold, and says so.
TEST(ConnectHoldTest, HoldsDoubleUpToTheLongestAndEndWhenAJobConnects) {
  ConnectHold hold;
  JobOutcome failed;
  failed.kind = OutcomeKind::kReleased;
  failed.error_type = "ConnectFailed";
  JobOutcome ran;
  ran.kind = OutcomeKind::kCompleted;
  ConnectHold::Clock::time_point now{};
  EXPECT_EQ(hold.note(ran, now), ConnectHold::Change::kNone);
  EXPECT_EQ(hold.note(failed, now), ConnectHold::Change::kFirstFailure);
  EXPECT_EQ(hold.note(failed, now + 1s), ConnectHold::Change::kNone);  // the same burst
  EXPECT_TRUE(hold.holding(now + 4s));
  EXPECT_FALSE(hold.holding(now + 5s));
  std::vector<long long> holds;
  for (int i = 0; i < 8; ++i) {
    now = hold.until();
    EXPECT_EQ(hold.note(failed, now), ConnectHold::Change::kNone);
    holds.push_back(std::chrono::duration_cast<std::chrono::seconds>(hold.hold()).count());
  }
  EXPECT_EQ(holds, (std::vector<long long>{10, 20, 40, 80, 160, 300, 300, 300}));
  JobOutcome released;  // a drain's release says nothing about the connection
  released.kind = OutcomeKind::kReleased;
  EXPECT_EQ(hold.note(released, now), ConnectHold::Change::kNone);
  EXPECT_TRUE(hold.failing());
  EXPECT_EQ(hold.note(ran, now), ConnectHold::Change::kRecovered);
  EXPECT_FALSE(hold.failing());
  EXPECT_EQ(hold.note(failed, now), ConnectHold::Change::kFirstFailure);
  EXPECT_EQ(hold.hold(), Duration(5000));
}

}  // namespace
}  // namespace jobd::runtime
