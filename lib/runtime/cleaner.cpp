#include "runtime/cleaner.hpp"

#include <spdlog/spdlog.h>

#include "core/log.hpp"
#include "store/retention.hpp"

namespace jobd::runtime {

Cleaner::Cleaner(boost::asio::io_context& io, DatabaseThread& db)
    : io_(io), db_(db), timer_(io), roll_up_timer_(io) {}

void Cleaner::configure(Duration interval, std::vector<Policy> policies, Duration keep_oops) {
  interval_ = interval;
  policies_ = std::move(policies);
  keep_oops_ = keep_oops;
}

void Cleaner::start() {
  stopped_ = false;
  schedule();
  scheduleRollUp();
}

void Cleaner::stop() {
  stopped_ = true;
  ++generation_;  // the batches already queued on the database thread end there
  timer_.cancel();
  roll_up_timer_.cancel();
}

void Cleaner::scheduleRollUp() {
  roll_up_timer_.expires_after(kRollUpInterval);
  roll_up_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) {
      return;
    }
    db_.post([this, generation = generation_.load()] {
      if (generation == generation_.load()) {
        db_.use("ROLL_UP_FAILED", [&](store::JobRepository& repo) {
          pqxx::work txn(*db_.connection());
          repo.limit(txn);
          store::rollUpMinutes(txn);
          txn.commit();
        });
      }
      boost::asio::post(io_, [this] {
        if (!stopped_) {
          scheduleRollUp();
        }
      });
    });
  });
}

void Cleaner::schedule() {
  timer_.expires_after(interval_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) {
      return;
    }
    // The next timer is set when this pass ends: passes never overlap.
    db_.post([this, pass = Pass{policies_, keep_oops_, generation_.load()}]() mutable {
      step(std::move(pass));
    });
  });
}

void Cleaner::step(Pass pass) {
  if (pass.generation != generation_.load()) {
    finish(pass);  // stopped: at drain, or a reload's new pass
    return;
  }
  std::optional<int> pruned;
  const bool oops_rows = pass.next >= pass.policies.size();
  bool ok = db_.use("CLEAN_FAILED", [&](store::JobRepository& repo) {
    pqxx::work txn(*db_.connection());
    repo.limit(txn);
    pruned = oops_rows ? store::pruneOopses(txn, pass.keep_oops, kBatch)
                       : store::pruneFinishedJobs(txn, pass.policies[pass.next].job_type,
                                                  pass.policies[pass.next].keep, kBatch);
    txn.commit();
  });
  if (!ok || !pruned) {
    // The database is away (the next pass tries again), or another daemon
    // holds the cleaner's lock and is cleaning.
    if (ok) {
      logs::debug("CLEAN_SKIPPED another daemon holds the cleaner's lock and is cleaning");
    }
    finish(pass);
    return;
  }
  if (oops_rows) {
    pass.oopses += static_cast<std::uint64_t>(*pruned);
    pruned_oopses_ += static_cast<std::uint64_t>(*pruned);
  } else {
    pass.jobs += static_cast<std::uint64_t>(*pruned);
    pruned_jobs_ += static_cast<std::uint64_t>(*pruned);
  }
  if (*pruned < kBatch) {
    if (oops_rows) {
      finish(pass);
      return;
    }
    ++pass.next;
  }
  // The next batch is a piece of work of its own: a stop ends the pass
  // there.
  db_.post([this, pass = std::move(pass)]() mutable { step(std::move(pass)); });
}

void Cleaner::finish(const Pass& pass) {
  if (pass.jobs + pass.oopses > 0) {
    logs::info("JOBS_PRUNED jobs={} oopses={}: past keep_finished and keep_oops", pass.jobs,
               pass.oopses);
  }
  boost::asio::post(io_, [this] {
    if (!stopped_) {
      schedule();
    }
  });
}

}  // namespace jobd::runtime
