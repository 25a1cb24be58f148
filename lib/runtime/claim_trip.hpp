// The Producer's trips to the database (runtime/producer.hpp), on its
// claims thread: a claim, and the jobs held under this daemon's lease.
// Each answer comes back to the io thread.
#pragma once

#include <functional>
#include <vector>

#include "runtime/asio.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/section.hpp"
#include "store/runtime_store.hpp"

namespace jobd::runtime {

// Gives the type's parked jobs back first when `release_throttled` (a
// limit this type had; on failure the section asks again next time), runs
// the claim, and hands its result to `on_claimed` on the io thread (ok:
// the claim reached the database). After a claim that came back short, it
// asks when the type's next scheduled job is due and sets the section's
// wake-up: a job scheduled meanwhile is seen there or by the next claim.
void runClaim(DatabaseThread& db, boost::asio::io_context& io, Section& section,
              store::ClaimRequest request, bool release_throttled,
              std::function<void(store::ClaimResult, bool ok, int asked)> on_claimed);

// The jobs RUNNING under this daemon's lease, to `on_held` on the io
// thread (nothing on failure: ORPHAN_CHECK_FAILED is logged).
void findHeld(DatabaseThread& db, boost::asio::io_context& io,
              std::function<void(std::vector<ClaimedJob>)> on_held);

}  // namespace jobd::runtime
