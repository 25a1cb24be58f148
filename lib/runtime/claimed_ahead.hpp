// ClaimedAhead: the jobs a section claimed past its free slots
// (`claim_ahead`), on the io thread. While a backlog of short jobs lasts,
// the Producer claims what the section's slots finish while a claim travels
// (Section::ahead), so that a freed slot takes a job at once instead of
// waiting a round trip and a WAL flush for the next claim. A job claimed
// ahead is RUNNING in the database from its claim: its lease is held and
// renewed from then, and its attempt counted. It waits here, in claim
// order, and starts when a slot of its section frees, its timeout counting
// from then. One whose lease is lost meanwhile (cancelled, suspended,
// rescued) is dropped unrun; one whose lease ran out here (renewals
// failed) is given back. One that no slot took within kHold is given
// back (released, attempt kept) for any daemon to claim, and its section
// claims nothing more ahead until one of its jobs returns: its slots are
// held by jobs that run long. A daemon that stops gives its queued jobs
// back at once.
#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "runtime/asio.hpp"
#include "runtime/lease_keeper.hpp"
#include "runtime/outcome_recorder.hpp"
#include "runtime/section.hpp"

namespace jobd::runtime {

class ClaimedAhead {
 public:
  static constexpr std::chrono::milliseconds kHold{1000};

  ClaimedAhead(boost::asio::io_context& io, LeaseKeeper& leases, OutcomeRecorder& recorder);

  // Queues a job claimed past the section's free slots.
  void queue(Section& section, Supervisor::Run run, ClaimedJob job);
  // The section's oldest queued job whose lease still holds, taken off the
  // queue; nullopt when none is left.
  std::optional<QueuedJob> next(Section& section);
  // Gives back every job the section has queued; returns how many.
  int releaseAll(Section& section, const char* why) {
    return release(section, std::chrono::steady_clock::time_point::max(), why);
  }

 private:
  int release(Section& section, std::chrono::steady_clock::time_point before, const char* why);
  // Releases one queued job, attempt given back.
  void give(QueuedJob queued, const char* why);
  // Waits for the oldest queued job's hold to end, if none is awaited.
  void arm();

  LeaseKeeper& leases_;
  OutcomeRecorder& recorder_;
  boost::asio::steady_timer hold_timer_;
  bool armed_ = false;
  std::vector<Section*> sections_;  // every section that ever queued a job
};

}  // namespace jobd::runtime
