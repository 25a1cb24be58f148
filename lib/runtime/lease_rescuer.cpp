#include "runtime/lease_rescuer.hpp"

#include <spdlog/spdlog.h>

#include "core/errors.hpp"
#include "core/log.hpp"
#include "runtime/oops_file.hpp"

namespace jobd::runtime {

LeaseRescuer::LeaseRescuer(boost::asio::io_context& io, DatabaseThread& db, Duration interval,
                           std::vector<store::RescuePolicy> policies, std::string oops_prefix,
                           std::string hostname)
    : db_(db),
      interval_(interval),
      policies_(std::move(policies)),
      oops_prefix_(std::move(oops_prefix)),
      hostname_(std::move(hostname)),
      timer_(io) {}

void LeaseRescuer::start() {
  stopped_ = false;
  schedule();
}

void LeaseRescuer::stop() {
  stopped_ = true;
  timer_.cancel();
}

void LeaseRescuer::schedule() {
  timer_.expires_after(interval_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_) {
      runOnce();
      schedule();
    }
  });
}

void LeaseRescuer::configure(Duration interval, std::vector<store::RescuePolicy> policies,
                             std::string oops_prefix, std::string oops_dir) {
  interval_ = interval;
  policies_ = std::move(policies);
  oops_prefix_ = std::move(oops_prefix);
  oops_dir_ = std::move(oops_dir);
}

void LeaseRescuer::runOnce() {
  // A copy for the database thread: configure() may replace them meanwhile.
  db_.post([this, policies = policies_, oops_prefix = oops_prefix_, oops_dir = oops_dir_] {
    db_.use("RESCUE_FAILED", [&](store::RuntimeStore& repo) {
      store::RescueResult result;
      do {
        result = repo.rescueExpired(policies, oops_prefix, hostname_, rng_, kBatch);
        for (const OopsReport& oops : result.oopses) {
          fileOops(oops_dir, oops);
        }
        if (result.requeued + result.failed > 0) {
          rescued_ += static_cast<std::uint64_t>(result.requeued) +
                      static_cast<std::uint64_t>(result.failed);
          logs::warn("JOB_RESCUED requeued={} failed={}: leases expired", result.requeued,
                     result.failed);
        }
      } while (result.requeued + result.failed == kBatch);
    });
    // Its own step: a failed rescue does not skip it, nor the reverse.
    db_.use("QUEUE_SWEEP_FAILED", [&](store::RuntimeStore& repo) {
      if (int promoted = repo.promoteStranded(); promoted > 0) {
        logs::info(
            "QUEUE_HEAD_PROMOTED count={}: queues behind a target had nothing in front "
            "of them after a race",
            promoted);
      }
    });
  });
}

}  // namespace jobd::runtime
