#include "runtime/claimed_ahead.hpp"

#include <algorithm>
#include <utility>

#include "core/log.hpp"

namespace jobd::runtime {

ClaimedAhead::ClaimedAhead(boost::asio::io_context& io, LeaseKeeper& leases,
                           OutcomeRecorder& recorder)
    : leases_(leases), recorder_(recorder), hold_timer_(io) {}

void ClaimedAhead::queue(Section& section, Supervisor::Run run, ClaimedJob job) {
  auto token = std::make_shared<CancellationToken>();
  leases_.add(job, run.section->lease_duration, token);
  section.queued.push_back(QueuedJob{std::move(run), std::move(job), std::move(token),
                                     std::chrono::steady_clock::now()});
  if (std::find(sections_.begin(), sections_.end(), &section) == sections_.end()) {
    sections_.push_back(&section);
  }
  arm();
}

std::optional<QueuedJob> ClaimedAhead::next(Section& section) {
  while (!section.queued.empty()) {
    QueuedJob queued = std::move(section.queued.front());
    section.queued.pop_front();
    if (queued.token->cancelled()) {
      continue;  // its lease was lost while it waited (the LeaseKeeper said so): unrun
    }
    if (queued.token->leaseExpiredLocally()) {
      // Renewals failed: another daemon may be given it. Given back
      // (fenced: changes nothing if it was).
      give(std::move(queued),
           "claimed ahead, and its lease ran out before a slot freed; the "
           "attempt is given back");
      continue;
    }
    return queued;
  }
  return std::nullopt;
}

void ClaimedAhead::give(QueuedJob queued, const char* why) {
  queued.token->cancel();
  leases_.finished(keyOf(queued.job));  // its lease goes once the release is written
  JobOutcome outcome;
  outcome.kind = OutcomeKind::kReleased;
  outcome.error_type = "Released";
  outcome.message = why;
  outcome.duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - queued.since);  // how long it waited here
  outcome.job = std::move(queued.job);
  recorder_.record(std::move(outcome), queued.run.config);
}

int ClaimedAhead::release(Section& section, std::chrono::steady_clock::time_point before,
                          const char* why) {
  int released = 0;
  while (!section.queued.empty() && section.queued.front().since < before) {
    QueuedJob queued = std::move(section.queued.front());
    section.queued.pop_front();
    if (queued.token->cancelled()) {
      continue;
    }
    give(std::move(queued), why);
    ++released;
  }
  return released;
}

void ClaimedAhead::arm() {
  if (armed_) {
    return;
  }
  std::optional<std::chrono::steady_clock::time_point> oldest;
  for (Section* section : sections_) {
    if (!section->queued.empty() && (!oldest || section->queued.front().since < *oldest)) {
      oldest = section->queued.front().since;
    }
  }
  if (!oldest) {
    return;
  }
  armed_ = true;
  hold_timer_.expires_at(*oldest + kHold);
  hold_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      return;  // never cancelled but by its destructor
    }
    armed_ = false;
    // With those whose hold ends within the next tenth of it: one release,
    // one log line, for a claim's worth.
    auto before = std::chrono::steady_clock::now() - kHold + kHold / 10;
    for (Section* section : sections_) {
      int released = release(*section, before,
                             "claimed ahead, and no slot freed for it within a second; the "
                             "attempt is given back");
      if (released > 0) {
        section->ahead_held_back = true;
        logs::info(
            "JOBS_CLAIMED_AHEAD_RELEASED section={} jobs={}: no slot freed for them within {} ms; "
            "given back for any daemon to claim",
            section->served.name, released, kHold.count());
      }
    }
    arm();
  });
}

}  // namespace jobd::runtime
