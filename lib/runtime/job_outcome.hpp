// JobOutcome: what became of one claimed job, as the JobExecutor reports it
// from a worker thread and the OutcomeRecorder writes it on the database
// thread. A value type, moved between threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/duration.hpp"

#include "runtime/job_source.hpp"

namespace jobd::runtime {

enum class OutcomeKind {
  kCompleted,        // run() returned
  kRetry,            // RetryError: requeued while attempts remain, else FAILED + OOPS
  kUserError,        // UserError: FAILED, no OOPS
  kSuspended,        // SuspendJob: SUSPENDED
  kOops,             // anything else: FAILED + OOPS
  kTimeout,          // ran past the timeout: FAILED + OOPS TimeoutError
  kCrashed,          // a child died of a signal jobd did not send: FAILED + OOPS
  kPayloadTooLarge,  // json_data over max_payload: FAILED + OOPS, never run
  kReleased,         // a draining daemon gave it back: WAITING, attempt given back
  kRateLimited,      // RateLimited: WAITING after release_delay, attempt given back,
                     // its key blocked as long (schema 20)
};

std::string_view outcomeName(OutcomeKind kind);

// A job whose own database connection could not be opened is released
// this much later (JobExecutor).
constexpr std::chrono::milliseconds kReleaseDelay{5000};

struct JobOutcome {
  ClaimedJob job;
  OutcomeKind kind = OutcomeKind::kCompleted;
  std::string error_type;  // SPEC §5's <Type>
  std::string message;
  std::string traceback;
  std::map<std::string, std::string> oops_vars;
  std::string operation;  // the source's operation description
  std::chrono::microseconds duration{0};
  int runner_pid = 0;  // the process runner's pid; 0 for a thread
  // For kReleased and kRateLimited: how long the job waits before it is
  // claimed again.
  std::chrono::milliseconds release_delay{0};
  // A completed job's result, as JSON text (schema 16).
  std::optional<std::string> result;
  // From a Python job class (runner = python): its retry_delay, used
  // instead of the section's; its getErrorRecipients(), added to a
  // notice's; set when its own notifyUserError/notifyOops sent the notice
  // (jobd sends none); and the OOPS id it was given, which the OOPS keeps.
  std::optional<Duration> retry_delay;
  std::vector<std::string> recipients;
  bool notified = false;
  std::optional<std::string> oops_id;
  // Set when the COMPLETED mark was already committed in the job's own
  // transaction (database handlers): nothing is left to write.
  bool committed = false;
  // Set when the job's own transaction found its lease gone: nothing was
  // committed and nothing may be written.
  bool lease_lost = false;
  // Set when the job's own commit failed in a way that leaves its outcome
  // unknown: nothing may be written; the lease decides.
  bool in_doubt = false;

  // Whether the OutcomeRecorder has anything to write.
  bool needsWrite() const { return !committed && !lease_lost && !in_doubt; }
};

// The outcome of a job never run, and its json_data never loaded, because
// the payload is over max_payload (SPEC §5's PayloadTooLarge).
JobOutcome payloadTooLarge(ClaimedJob job, std::size_t max_payload);

}  // namespace jobd::runtime
