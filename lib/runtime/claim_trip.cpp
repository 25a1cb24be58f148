#include "runtime/claim_trip.hpp"

#include <optional>
#include <string>
#include <utility>

#include "core/log.hpp"

namespace jobd::runtime {

void runClaim(DatabaseThread& db, boost::asio::io_context& io, Section& section,
              store::ClaimRequest request, bool release_throttled,
              std::function<void(store::ClaimResult, bool ok, int asked)> on_claimed) {
  db.post([&db, &io, &section, request = std::move(request), release_throttled,
           on_claimed = std::move(on_claimed)]() mutable {
    if (release_throttled) {
      int released = 0;
      if (!db.use("RELEASE_THROTTLED_FAILED job_type=" + request.job_type,
                  [&](store::RuntimeStore& repo) {
                    released = repo.releaseThrottled(request.job_type);
                  })) {
        boost::asio::post(io, [&section] { section.release_throttled = true; });  // next time
      } else if (released > 0) {
        logs::info("THROTTLED_RELEASED job_type={} jobs={}: the type has no limit now",
                   request.job_type, released);
      }
    }
    store::ClaimResult result;
    const std::string event = "CLAIM_FAILED section=" + request.section;
    bool ok = db.use(event, [&](store::RuntimeStore& repo) { result = repo.claim(request); });
    bool short_claim = ok && static_cast<int>(result.jobs.size()) < request.limit;
    boost::asio::post(
        io, [on_claimed = std::move(on_claimed), result = std::move(result), ok,
             asked = request.limit]() mutable { on_claimed(std::move(result), ok, asked); });
    // After the jobs are on their way (a round trip less before they
    // start).
    if (short_claim) {
      std::optional<double> in;
      db.use(event, [&](store::RuntimeStore& repo) {
        in = repo.nextScheduledIn(request.job_type, request.key_limit.has_value());
      });
      if (in) {
        boost::asio::post(io, [&section, seconds = *in] {
          if (!section.retired) {
            section.wakeAt(seconds);
          }
        });
      }
    }
  });
}

void findHeld(DatabaseThread& db, boost::asio::io_context& io,
              std::function<void(std::vector<ClaimedJob>)> on_held) {
  db.post([&db, &io, on_held = std::move(on_held)]() mutable {
    std::vector<ClaimedJob> held;
    if (db.use("ORPHAN_CHECK_FAILED",
               [&](store::RuntimeStore& repo) { held = repo.heldByOwner(); })) {
      boost::asio::post(io, [on_held = std::move(on_held), held = std::move(held)]() mutable {
        on_held(std::move(held));
      });
    }
  });
}

}  // namespace jobd::runtime
