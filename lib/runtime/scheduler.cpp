#include "runtime/scheduler.hpp"

#include <cmath>
#include <stdexcept>

#include "core/log.hpp"

namespace jobd::runtime {
namespace {

SysSeconds at(std::int64_t unix_seconds) {
  return SysSeconds(std::chrono::seconds(unix_seconds));
}

std::int64_t unixSeconds(SysSeconds t) {
  return t.time_since_epoch().count();
}

}  // namespace

Scheduler::Scheduler(boost::asio::io_context& io, DatabaseThread& db, std::string owner)
    : io_(io), db_(db), owner_(std::move(owner)), timer_(io) {}

void Scheduler::configure(std::vector<store::ScheduleDefinition> configured,
                          std::vector<std::string> unscheduled) {
  sync_ = Sync{std::move(configured), std::move(unscheduled)};
  if (!stopped_) {
    wake();
  }
}

void Scheduler::start() {
  stopped_ = false;
  wake();
}

void Scheduler::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Scheduler::wake() {
  if (stopped_) {
    return;
  }
  if (running_) {
    again_ = true;
    return;
  }
  timer_.cancel();
  runPass();
}

void Scheduler::runPass() {
  running_ = true;
  again_ = false;
  db_.post([this, sync = std::exchange(sync_, std::nullopt)]() mutable {
    PassResult result = pass(sync);
    if (!result.ok && sync) {
      // Written at the next pass instead, unless a reload brings newer.
      boost::asio::post(io_, [this, sync = std::move(sync)]() mutable {
        if (!sync_) {
          sync_ = std::move(sync);
        }
      });
    }
    boost::asio::post(io_, [this, result] { passed(result); });
  });
}

Scheduler::PassResult Scheduler::pass(std::optional<Sync> sync) {
  PassResult result;
  result.ok = db_.use("SCHEDULE_PASS_FAILED", [&](store::JobRepository&) {
    if (sync) {
      pqxx::work txn(*db_.connection());
      for (const std::string& name :
           store::syncConfigSchedules(txn, sync->configured, sync->unscheduled, owner_)) {
        logs::warn(
            "SCHEDULE_NAME_TAKEN section {}'s schedule is not written: a schedule of that name "
            "was made by SQL or `jobd schedule add`",
            name);
      }
      txn.commit();
    }
    pqxx::work txn(*db_.connection());
    std::int64_t now = 0;
    std::vector<store::DueSchedule> due = store::lockDueSchedules(txn, kBatch, now);
    for (const store::DueSchedule& one : due) {
      fire(txn, one, now);
    }
    result.more = due.size() == static_cast<std::size_t>(kBatch);
    result.seconds_to_next = store::secondsToNextTick(txn);
    txn.commit();
  });
  return result;
}

const ScheduleSpec* Scheduler::specOf(pqxx::transaction_base& txn, const store::DueSchedule& due) {
  std::string text = due.spec + '\n' + due.time_zone;
  auto it = specs_.find(due.name);
  if (it != specs_.end() && it->second.first == text) {
    return &it->second.second;
  }
  try {
    ScheduleSpec spec = ScheduleSpec::parse(due.spec, due.time_zone);
    return &specs_.insert_or_assign(due.name, std::make_pair(text, std::move(spec)))
                .first->second.second;
  } catch (const std::invalid_argument& e) {
    // Written by SQL with no check: set aside until it is changed.
    logs::error("SCHEDULE_INVALID schedule={} spec='{}' time_zone={}: {}", due.name, due.spec,
                due.time_zone, e.what());
    store::recordProblem(txn, due.name, e.what());
    specs_.erase(due.name);
    return nullptr;
  }
}

void Scheduler::fire(pqxx::transaction_base& txn, const store::DueSchedule& due, std::int64_t now) {
  const ScheduleSpec* spec = specOf(txn, due);
  if (spec == nullptr) {
    return;
  }
  DueTicks ticks;
  try {
    ticks = dueTicks(*spec, at(due.fired_through), at(now), parseCatchUp(due.catch_up),
                     due.catch_up_limit);
  } catch (const std::exception& e) {
    // Time zone data that makes no sense: this schedule waits for a fix,
    // the others fire.
    logs::error("SCHEDULE_INVALID schedule={}: {}", due.name, e.what());
    store::recordProblem(txn, due.name, e.what());
    return;
  }
  for (SysSeconds tick : ticks.fire) {
    store::FireResult made = store::fireSchedule(txn, due.name, unixSeconds(tick), owner_);
    if (made.job_id) {
      ++fired_;
      logs::debug("SCHEDULE_FIRED schedule={} tick={} job={}", due.name, unixSeconds(tick),
                  *made.job_id);
    } else if (made.outcome == "skipped") {
      logs::info(
          "SCHEDULE_TICK_SKIPPED schedule={} tick={}: its last job is still WAITING or "
          "RUNNING (overlap = skip)",
          due.name, unixSeconds(tick));
    }
  }
  if (ticks.missed > 0) {
    logs::warn(
        "SCHEDULE_TICKS_MISSED schedule={} missed={} catch_up={}: ticks that came due "
        "while no daemon made them",
        due.name, ticks.missed, due.catch_up);
  }
  std::optional<std::int64_t> next;
  if (ticks.next) {
    next = unixSeconds(*ticks.next);
  }
  store::recordPass(txn, due.name, now, next, ticks.missed);
}

void Scheduler::passed(const PassResult& result) {
  running_ = false;
  if (stopped_) {
    return;
  }
  if (again_ || sync_ || (result.ok && result.more)) {
    runPass();
    return;
  }
  if (!result.ok) {
    arm(DatabaseThread::backoff(failures_++, rng_));
    return;
  }
  failures_ = 0;
  if (!result.seconds_to_next) {
    arm(kIdle);
    return;
  }
  double seconds = *result.seconds_to_next;
  if (seconds <= 0) {
    // Due, and held by another daemon's pass (or not computed yet): look
    // again once that pass is likely over.
    std::uniform_int_distribution<int> jitter(100, 300);
    arm(std::chrono::milliseconds(jitter(rng_)));
    return;
  }
  // A few milliseconds late, so that the database's clock has passed the
  // tick when the pass reads it.
  auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(seconds * 1000))) +
               std::chrono::milliseconds(5);
  arm(std::min<std::chrono::milliseconds>(delay, kIdle));
}

void Scheduler::arm(std::chrono::milliseconds delay) {
  timer_.expires_after(delay);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_ && !running_) {
      runPass();
    }
  });
}

}  // namespace jobd::runtime
