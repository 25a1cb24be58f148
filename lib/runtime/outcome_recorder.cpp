#include "runtime/outcome_recorder.hpp"

#include <spdlog/spdlog.h>

#include "core/errors.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/retry_policy.hpp"
#include "core/text.hpp"
#include "runtime/oops_file.hpp"

namespace jobd::runtime {
namespace {

std::string typeAndMessage(const JobOutcome& o) {
  return o.error_type + ": " + o.message;
}

}  // namespace

OutcomeRecorder::OutcomeRecorder(DatabaseThread& db, Metrics& metrics, std::string hostname,
                                 std::function<void()> on_target_released)
    : db_(db),
      metrics_(metrics),
      hostname_(std::move(hostname)),
      on_target_released_(std::move(on_target_released)),
      retry_timer_(db.context()) {}

void OutcomeRecorder::record(JobOutcome outcome, std::shared_ptr<const config::Config> config) {
  for (std::string* text : {&outcome.error_type, &outcome.message, &outcome.traceback}) {
    *text = storableText(*text);
  }
  for (auto& [key, value] : outcome.oops_vars) {
    value = storableText(value);
  }
  pending_count_.fetch_add(1);
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    first = inbox_.empty() && progress_inbox_.empty();
    inbox_.push_back(Item{std::move(outcome), std::move(config)});
  }
  // The first outcome of a batch wakes the database thread; the flush takes
  // every outcome recorded by the time it runs.
  if (first) {
    db_.post([this] { scheduleFlush(); });
  }
}

void OutcomeRecorder::recordProgress(std::vector<ProgressReport> reports) {
  if (reports.empty()) {
    return;
  }
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    first = inbox_.empty() && progress_inbox_.empty();
    for (ProgressReport& report : reports) {
      progress_inbox_.push_back(std::move(report));
    }
  }
  if (first) {
    db_.post([this] { scheduleFlush(); });
  }
}

void OutcomeRecorder::takeInbox() {
  std::lock_guard<std::mutex> lock(inbox_mutex_);
  for (ProgressReport& report : progress_inbox_) {
    auto same =
        std::find_if(progress_queue_.begin(), progress_queue_.end(),
                     [&](const ProgressReport& queued) { return queued.key == report.key; });
    if (same == progress_queue_.end()) {
      progress_queue_.push_back(std::move(report));
    } else {
      same->update.mergeLater(std::move(report.update));
    }
  }
  progress_inbox_.clear();
  if (queue_.empty()) {
    queue_.swap(inbox_);
  } else {
    queue_.insert(queue_.end(), std::make_move_iterator(inbox_.begin()),
                  std::make_move_iterator(inbox_.end()));
    inbox_.clear();
  }
}

void OutcomeRecorder::scheduleFlush() {
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    // Posted behind whatever is already queued on the database thread, so
    // outcomes that arrive meanwhile join this batch.
    db_.post([this] { flush(); });
  }
}

void OutcomeRecorder::flush() {
  flush_scheduled_ = false;
  takeInbox();
  if (queue_.empty() && progress_queue_.empty()) {
    return;
  }
  store::RuntimeStore* store = db_.store();
  if (store == nullptr) {
    flush_scheduled_ = true;
    retry_timer_.expires_after(std::chrono::milliseconds(500));
    retry_timer_.async_wait([this](const boost::system::error_code&) {
      flush_scheduled_ = false;
      scheduleFlush();
    });
    return;
  }
  // At most kMaxBatch outcomes per transaction: a backlog is written in
  // bounded statements, each well inside statement_timeout, rather than in
  // one that grows with the backlog.
  std::vector<Item> batch;
  if (queue_.size() <= kMaxBatch) {
    batch.swap(queue_);
  } else {
    auto end = queue_.begin() + static_cast<std::ptrdiff_t>(kMaxBatch);
    batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
    queue_.erase(queue_.begin(), end);
    scheduleFlush();
  }
  // A lost connection, or a commit in doubt: keep the batch and write it
  // again once connected. Writing a batch that did land is harmless, since
  // every write is fenced: it now changes nothing.
  auto keepForLater = [&](const std::exception& e) {
    db_.connectionLost(errorLine(e.what()));
    queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()),
                  std::make_move_iterator(batch.end()));
    scheduleFlush();
  };
  try {
    writeProgress(*store);
  } catch (const pqxx::broken_connection& e) {
    keepForLater(e);
    return;
  } catch (const pqxx::in_doubt_error& e) {
    keepForLater(e);
    return;
  }
  if (batch.empty()) {
    return;
  }
  try {
    writeBatch(*store, batch);
  } catch (const pqxx::broken_connection& e) {
    keepForLater(e);
  } catch (const pqxx::in_doubt_error& e) {
    keepForLater(e);
  } catch (const std::exception& e) {
    logs::error("OUTCOME_BATCH_FAILED writing {} outcomes one by one: {}", batch.size(),
                errorLine(e.what()));
    writeOneByOne(*store, batch);
  }
}

void OutcomeRecorder::writeBatch(store::RuntimeStore& store, std::vector<Item>& items) {
  finished_.clear();  // what a batch that threw left: its views are gone
  std::vector<const JobOutcome*> completions;
  std::vector<store::OutcomeWrite> others;
  for (const Item& item : items) {
    if (!item.outcome.needsWrite()) {
      continue;
    }
    if (item.outcome.kind == OutcomeKind::kCompleted) {
      completions.push_back(&item.outcome);
    } else {
      others.push_back(resolve(item));
    }
  }
  store::OutcomeBatchResult result = store.writeOutcomes(completions, others);
  const std::vector<std::int64_t>& lost = result.lost;
  const std::vector<bool>& written = result.written;

  std::size_t other_index = 0;
  for (const Item& item : items) {
    const JobOutcome& o = item.outcome;
    if (!o.needsWrite()) {
      finished(item, nullptr, o.lease_lost);
    } else if (o.kind == OutcomeKind::kCompleted) {
      bool was_lost = std::find(lost.begin(), lost.end(), o.job.id) != lost.end();
      finished(item, nullptr, was_lost);
    } else {
      const store::OutcomeWrite& write = others[other_index];
      finished(item, &write, !written[other_index]);
      ++other_index;
    }
  }
  metrics_.finished(finished_);  // its views point into items and others
  finished_.clear();
  pending_count_.fetch_sub(items.size());
  settled(items);
  // A job with a target may free jobs waiting on that target, of any type;
  // one of a limited type (schema 20) may make room for its key's parked
  // jobs, which every daemon serving the type should hear of.
  std::vector<std::string> limited;
  bool released = false;
  for (const Item& item : items) {
    const config::SectionConfig* section = item.config->section(item.outcome.job.section);
    if (section != nullptr && section->limited() &&
        std::find(limited.begin(), limited.end(), item.outcome.job.job_type) == limited.end()) {
      limited.push_back(item.outcome.job.job_type);
    }
    released = released || item.outcome.job.target.has_value();
  }
  if (!limited.empty()) {
    try {
      store.notifyJobTypes(limited);
    } catch (const std::exception& e) {
      // The outcomes are written: the poll, or the next batch, tells them.
      logs::warn("LIMITED_NOTIFY_FAILED {}", errorLine(e.what()));
    }
  }
  if ((released || !limited.empty()) && on_target_released_) {
    on_target_released_();
  }
}

// Progress goes first: a job's last report lands before the outcome that
// ends its attempt (and would fence the report out). A lost connection
// keeps it for the next try; any other failure loses only that report.
void OutcomeRecorder::writeProgress(store::RuntimeStore& store) {
  if (progress_queue_.empty()) {
    return;
  }
  try {
    progress_writes_.fetch_add(static_cast<std::uint64_t>(store.saveProgress(progress_queue_)));
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::in_doubt_error&) {
    throw;
  } catch (const std::exception& e) {
    logs::error("PROGRESS_WRITE_FAILED {} reports not written: {}", progress_queue_.size(),
                errorLine(e.what()));
  }
  progress_queue_.clear();
}

void OutcomeRecorder::writeOneByOne(store::RuntimeStore& store, std::vector<Item>& items) {
  for (Item& item : items) {
    std::vector<Item> one;
    one.push_back(std::move(item));
    try {
      writeBatch(store, one);
    } catch (const std::exception& e) {
      // The job stays RUNNING; when its lease expires the rescuer requeues
      // or fails it, so nothing is lost.
      logs::error("OUTCOME_WRITE_FAILED id={} type={} attempt={}: {}", one[0].outcome.job.id,
                  one[0].outcome.job.job_type, one[0].outcome.job.attempt, errorLine(e.what()));
      pending_count_.fetch_sub(1);
      settled(one);
    }
  }
}

void OutcomeRecorder::settled(const std::vector<Item>& items) {
  if (!on_settled_) {
    return;
  }
  std::vector<AttemptKey> keys;
  keys.reserve(items.size());
  for (const Item& item : items) {
    keys.push_back(keyOf(item.outcome.job));
  }
  on_settled_(std::move(keys));
}

store::OutcomeWrite OutcomeRecorder::resolve(const Item& item) {
  const JobOutcome& o = item.outcome;
  const config::SectionConfig* section = item.config->section(o.job.section);
  config::SectionConfig defaults;
  if (section == nullptr) {
    section = &defaults;
  }
  store::OutcomeWrite w;
  w.outcome = &o;
  w.log = typeAndMessage(o);
  auto oops = [&] {
    w.status = JobStatus::kFailed;
    w.attempt_outcome = "failed";
    OopsReport report =
        newOopsReport(rng_, item.config->daemon().oops_prefix,
                      {o.job.id, o.job.job_type, o.job.attempt, o.job.section}, hostname_);
    report.type = o.error_type;
    report.value = o.message;
    report.traceback = o.traceback;
    report.vars = o.oops_vars;
    // A Python job's notifyOops was given this id before the outcome came.
    if (o.oops_id && validOopsId(*o.oops_id)) {
      report.id = *o.oops_id;
    }
    w.oops = std::move(report);
  };
  switch (o.kind) {
    case OutcomeKind::kRetry: {
      int max_retries = section->max_retries.value_or(o.job.max_retries);
      if (attemptsRemain(o.job.attempt, max_retries)) {
        w.status = JobStatus::kWaiting;
        w.attempt_outcome = "retry";
        w.requeue_delay = retryDelay(o.retry_delay.value_or(section->retry_delay),
                                     section->retry_backoff == config::RetryBackoff::kExponential,
                                     section->retry_delay_max, o.job.attempt, rng_);
      } else {
        oops();
      }
      break;
    }
    case OutcomeKind::kUserError:
      w.status = JobStatus::kFailed;
      w.attempt_outcome = "user_error";
      w.log = o.message;
      break;
    case OutcomeKind::kSuspended:
      w.status = JobStatus::kSuspended;
      w.attempt_outcome = "suspended";
      break;
    case OutcomeKind::kTimeout:
      oops();
      w.attempt_outcome = "timeout";
      break;
    case OutcomeKind::kCrashed: {
      // The runner died under the job, as a daemon killed mid-job does: a
      // rescue requeues such a job at once while attempts remain, and so
      // does this, with an OOPS for every crash.
      int max_retries = section->max_retries.value_or(o.job.max_retries);
      oops();
      w.attempt_outcome = "crashed";
      if (attemptsRemain(o.job.attempt, max_retries)) {
        w.status = JobStatus::kWaiting;
        w.requeue_delay = Duration(0);
      }
      break;
    }
    case OutcomeKind::kReleased:
      w.status = JobStatus::kWaiting;
      w.attempt_outcome = "released";
      w.requeue_delay = o.release_delay;
      w.give_back_attempt = true;
      break;
    case OutcomeKind::kRateLimited:
      w.status = JobStatus::kWaiting;
      w.attempt_outcome = "rate_limited";
      w.requeue_delay = o.release_delay;
      w.give_back_attempt = true;
      w.block_key = o.release_delay;
      break;
    case OutcomeKind::kOops:
    case OutcomeKind::kPayloadTooLarge:
    case OutcomeKind::kCompleted:
      oops();
      break;
  }
  return w;
}

void OutcomeRecorder::finished(const Item& item, const store::OutcomeWrite* write,
                               bool lease_lost) {
  const JobOutcome& o = item.outcome;
  if (o.in_doubt) {
    logs::warn(
        "JOB_COMMIT_IN_DOUBT id={} type={} attempt={}: the job's commit may not have "
        "landed; its lease decides",
        o.job.id, o.job.job_type, o.job.attempt);
    return;
  }
  if (lease_lost) {
    counters_.lease_lost++;
    metrics_.leaseLost(o.job.job_type);
    logs::warn(
        "JOB_LEASE_LOST id={} type={} attempt={} outcome={}: this daemon no longer holds "
        "the job; nothing was written",
        o.job.id, o.job.job_type, o.job.attempt, outcomeName(o.kind));
    return;
  }
  std::string outcome = "completed";
  if (write != nullptr) {
    outcome = write->attempt_outcome;
    if (o.kind == OutcomeKind::kReleased) {
      counters_.released++;
    } else if (o.kind == OutcomeKind::kRateLimited) {
      logs::info("JOB_RATE_LIMITED id={} type={}: {}; it runs again in {}, its attempt kept",
                 o.job.id, o.job.job_type, typeAndMessage(o),
                 formatDuration(std::chrono::duration_cast<Duration>(o.release_delay)));
      counters_.released++;
    } else if (write->status == JobStatus::kWaiting) {
      logs::info("Scheduling retry due to {}.", typeAndMessage(o));
      counters_.retried++;
    } else if (write->status == JobStatus::kSuspended) {
      counters_.suspended++;
    } else {
      counters_.failed++;
    }
    if (write->oops) {
      fileOops(item.config->daemon().oops_dir, *write->oops);
    }
    if (write->status == JobStatus::kFailed && (write->oops || o.kind == OutcomeKind::kUserError) &&
        on_failed_) {
      on_failed_(o, write->oops ? std::optional<std::string>(write->oops->id) : std::nullopt,
                 item.config);
    }
  } else {
    counters_.completed++;
  }
  finished_.push_back({o.job.job_type,
                       write != nullptr ? std::string_view(write->attempt_outcome) : "completed",
                       std::chrono::duration<double>(o.duration).count()});
  logs::info("JOB_FINISHED id={} type={} attempt={} duration_ms={} outcome={} oops={}{}", o.job.id,
             o.job.job_type, o.job.attempt,
             std::chrono::duration_cast<std::chrono::milliseconds>(o.duration).count(), outcome,
             write && write->oops ? write->oops->id : "-",
             o.runner_pid != 0 ? " runner_pid=" + std::to_string(o.runner_pid) : "");
}

}  // namespace jobd::runtime
