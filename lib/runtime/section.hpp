// Section: what the Producer (runtime/producer.hpp) knows of one served
// section on the io thread, and the timers that make it claim without a
// NOTIFY: the next scheduled job, a short gather of freed slots, and the
// quiet enqueue's sleep and polls (runtime/sleeper.hpp). The Producer
// decides when and how much to claim; a Section keeps the state, and calls
// back `claim` when one of its timers fires. Sections are never destroyed
// while the Producer lives (one no longer served is retired), so their
// timers' handlers may hold them by reference.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "runtime/asio.hpp"
#include "runtime/connect_hold.hpp"
#include "runtime/job_outcome.hpp"
#include "runtime/job_source.hpp"
#include "runtime/process_runner.hpp"
#include "runtime/sleeper.hpp"
#include "runtime/supervisor.hpp"
#include "store/runtime_store.hpp"

namespace jobd::runtime {

struct ServedSection {
  std::string name;
  std::shared_ptr<const IJobSource> source;
  std::shared_ptr<ProcessRunner> runner;  // set for `runner = process`
};

// What a section's finished jobs came to (`jobd run-once` reports it).
struct RunCounts {
  int completed = 0;
  int incomplete = 0;
};

// A job claimed ahead of a free slot (Producer, "claiming ahead"): its
// lease is held, and renewed, from the claim on; it starts when a slot of
// its section frees, under the configuration it was claimed with.
struct QueuedJob {
  Supervisor::Run run;
  ClaimedJob job;
  std::shared_ptr<CancellationToken> token;  // the lease's, from the claim
  std::chrono::steady_clock::time_point since;
};

class Section {
 public:
  Section(boost::asio::io_context& io, std::function<void()> claim);
  Section(const Section&) = delete;
  Section& operator=(const Section&) = delete;

  ServedSection served;
  const config::SectionConfig* config = nullptr;
  std::shared_ptr<const config::Config> snapshot;  // owns *config
  bool retired = false;                            // no longer served
  RunCounts counts;
  int running = 0;
  bool claiming = false;
  bool again = false;    // woken while a claim was in flight
  bool more = false;     // the last claim was full, or narrowed: more may be ready
  bool starved = false;  // wanted to claim but the pool was full
  // Served without a limit (schema 20): the next claim first gives back
  // the jobs a limit of this type parked (jobd.release_throttled).
  bool release_throttled = false;
  bool polled = false;
  // Its jobs could not open their own connection: claims wait, then one
  // job tries again.
  ConnectHold connect;
  // Claimed ahead, waiting for a slot; oldest first.
  std::deque<QueuedJob> queued;
  // Moving means, in seconds: how long its jobs ran, and how long its
  // claims took from send to reply. Claiming ahead sizes the queue by
  // them: the jobs its slots finish while one claim travels.
  // Below zero until the first job returned, the first claim replied.
  double mean_run = -1;
  double mean_claim = -1;
  std::chrono::steady_clock::time_point claim_sent;
  // Jobs claimed ahead waited out their hold: until one of its jobs
  // returns, its slots are taken by jobs that run long, and it claims
  // nothing ahead.
  bool ahead_held_back = false;
  // How many jobs past its free slots the next claim may take: none
  // without `claim_ahead` or a backlog; else what `slots` finish in two
  // claims' time, at most `claim_ahead`.
  int ahead(int slots) const;

  // The most jobs of the section that can run at once here: its
  // concurrency, and for `runner = thread` the pool's workers too.
  int slots(int workers) const;

  // Its claim of `limit` jobs, with its limit by key if it has one.
  store::ClaimRequest claimRequest(int limit, std::uint64_t max_payload) const;

  // Claims in `seconds` (and a millisecond), unless an earlier wake-up is
  // already set: the next scheduled job, a connect hold, a backlog of
  // outcomes, a quiet poll.
  void wakeAt(double seconds);
  void cancelWake() { wake_timer_.cancel(); }

  // Whether a claim of `limit` jobs waits a moment for other slots to
  // free: while a backlog keeps some of the section's slots busy, every
  // claim costs a round trip and a WAL flush whatever its size, so a slot
  // freed now waits up to kGather for others rather than each taking a
  // claim of its own. Once all slots are free, or the wait is over, the
  // claim goes (and this returns false).
  bool gathers(int limit, int slots);

  // The quiet enqueue. After a short claim: fall asleep on the section's
  // type (claiming once more if newly asleep, for what committed between
  // the claim and the sleep), or, while an enqueue of the type is in
  // flight (it sends no NOTIFY), claim again soon, sooner while the claims
  // find jobs.
  void settle(Sleeper& sleeper, bool got_jobs);
  // Lets go of the sleep: a full claim (busy, the enqueues need not
  // notify), a reload, or the section retired.
  void wakeUp(Sleeper* sleeper);
  // The sleeper's session is gone, and its locks with it.
  void sleepLost() { asleep_ = false; }

  // What a returned job says about the jobs' own connection; logged when
  // it changes.
  void noteConnection(const JobOutcome& outcome);

 private:
  static constexpr std::chrono::microseconds kGather{1000};
  // The longest a section that an enqueue in flight keeps awake waits
  // between two claims, and while its claims find jobs (a few
  // milliseconds gathers a batch).
  static constexpr std::chrono::milliseconds kLongestQuietPoll{25};
  static constexpr std::chrono::milliseconds kQuietPollWithJobs{4};

  std::function<void()> claim_;
  boost::asio::steady_timer wake_timer_;
  std::chrono::steady_clock::time_point wake_at_;
  boost::asio::steady_timer gather_timer_;
  std::chrono::steady_clock::time_point gather_until_;
  bool gathered_ = false;
  bool asleep_ = false;
  bool settling_ = false;       // a sleepOn in flight
  std::uint64_t wake_ups_ = 0;  // wakeUp() calls, to spot one during a sleepOn
  std::chrono::milliseconds quiet_poll_{1};
};

}  // namespace jobd::runtime
