#include "runtime/scheduler.hpp"

#include <cmath>
#include <stdexcept>

#include "core/errors.hpp"
#include "core/log.hpp"
#include "core/text.hpp"

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

void Scheduler::configure(std::vector<store::ScheduleDefinition> configured) {
  sync_ = std::move(configured);
  ++sync_generation_;
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
  db_.post([this, sync = sync_, generation = sync_generation_] {
    PassResult result = pass(sync);
    result.generation = generation;
    boost::asio::post(io_, [this, result] { passed(result); });
  });
}

Scheduler::PassResult Scheduler::pass(const std::optional<Sync>& sync) {
  PassResult result;
  if (sync) {
    // On its own: a sync that keeps failing (the role may not write
    // jobd.schedule) is retried with backoff, and keeps no schedule from
    // firing.
    result.synced = db_.use("SCHEDULE_SYNC_FAILED", [&](store::JobRepository& repo) {
      pqxx::work txn(*db_.connection());
      repo.limit(txn);
      for (const std::string& name : store::syncConfigSchedules(txn, *sync, owner_)) {
        logs::warn(
            "SCHEDULE_NAME_TAKEN section {}'s schedule is not written: `jobd schedule add` or "
            "SQL made a schedule of that name; remove that one (`jobd schedule remove {}`) or "
            "rename the section",
            name, name);
      }
      txn.commit();
    });
  }
  result.ok = db_.use("SCHEDULE_PASS_FAILED", [&](store::JobRepository& repo) {
    pqxx::work txn(*db_.connection());
    repo.limit(txn);
    std::int64_t now = 0;
    std::vector<store::DueSchedule> due = store::lockDueSchedules(txn, kBatch, passed_over_, now);
    for (const store::DueSchedule& one : due) {
      // A savepoint each: one schedule's error is not the others'.
      try {
        pqxx::subtransaction sub(txn, "schedule");
        fire(sub, one, now);
        sub.commit();
      } catch (const pqxx::broken_connection&) {
        throw;
      } catch (const pqxx::sql_error& e) {
        logs::error("SCHEDULE_FIRE_FAILED schedule={} error={}: tried again in a minute", one.name,
                    errorLine(e.what()));
        store::postpone(txn, one.name, 60);
      }
    }
    result.more = due.size() == static_cast<std::size_t>(kBatch);
    result.seconds_to_next = store::secondsToNextTick(txn, passed_over_);
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
    ScheduleSpec::parse(due.spec, "UTC");
  } catch (const std::invalid_argument& e) {
    // Written by SQL with no check: set aside for every daemon until it
    // is changed.
    logs::error("SCHEDULE_INVALID schedule={} spec='{}': {}", due.name, due.spec, e.what());
    store::recordProblem(txn, due.name, e.what());
    specs_.erase(due.name);
    return nullptr;
  }
  try {
    ScheduleSpec spec = ScheduleSpec::parse(due.spec, due.time_zone);
    return &specs_.insert_or_assign(due.name, std::make_pair(text, std::move(spec)))
                .first->second.second;
  } catch (const std::exception& e) {
    // A zone this host's tzdata lacks (older, or none at all) may be
    // another host's: the schedule is left to the daemons that know it
    // until this one restarts.
    logs::error(
        "SCHEDULE_ZONE_UNKNOWN schedule={} time_zone={}: {}; this daemon leaves it to "
        "the others (install or update tzdata, then restart)",
        due.name, due.time_zone, e.what());
    passed_over_.push_back(due.name);
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
  std::uint64_t skipped = 0;
  if (due.overlap == "skip" && ticks.fire.size() > 1) {
    // Only one of them could run: the newest, as the others' jobs would
    // each skip the next tick.
    skipped = ticks.fire.size() - 1;
    ticks.fire.erase(ticks.fire.begin(), ticks.fire.end() - 1);
  }
  for (SysSeconds tick : ticks.fire) {
    store::FireResult made = store::fireSchedule(txn, due.name, unixSeconds(tick), owner_);
    if (made.job_id) {
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
  store::recordPass(txn, due.name, now, next, ticks.missed, skipped);
}

void Scheduler::passed(const PassResult& result) {
  running_ = false;
  if (result.synced && result.generation == sync_generation_) {
    sync_.reset();  // not a reload's newer one
  }
  if (stopped_) {
    return;
  }
  if (!result.ok || (sync_ && !result.synced)) {
    // The database is away, or the sync keeps failing: back off, and keep
    // what is left to write.
    arm(DatabaseThread::backoff(failures_++, rng_));
    return;
  }
  failures_ = 0;
  if (again_ || sync_ || result.more) {
    runPass();
    return;
  }
  if (!result.seconds_to_next) {
    held_ = 0;
    arm(kIdle);
    return;
  }
  double seconds = *result.seconds_to_next;
  if (seconds <= 0) {
    // Due, and held by another daemon's pass (or not computed yet): look
    // again once that pass is likely over, later each time it still is.
    std::uniform_int_distribution<int> jitter(100, 300);
    arm(std::chrono::milliseconds(jitter(rng_) << std::min(held_++, 4)));
    return;
  }
  held_ = 0;
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
