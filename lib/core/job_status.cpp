#include "core/job_status.hpp"

#include "core/errors.hpp"

namespace jobd {
namespace {

constexpr std::size_t index(JobStatus s) {
  return static_cast<std::size_t>(s);
}

// kTransitions[from][to], Launchpad's _valid_transitions plus cancel
// (WAITING, RUNNING and SUSPENDED may go to FAILED) and the operator's retry
// of a finished job (COMPLETED/FAILED -> WAITING).
constexpr bool kTransitions[5][5] = {
    //             WAITING RUNNING COMPLETED FAILED SUSPENDED
    /* WAITING   */ {true, true, false, true, true},
    /* RUNNING   */ {true, false, true, true, true},
    /* COMPLETED */ {true, false, false, false, false},
    /* FAILED    */ {true, false, false, false, false},
    /* SUSPENDED */ {true, false, false, true, false},
};

}  // namespace

std::string_view statusTitle(JobStatus status) {
  switch (status) {
    case JobStatus::kWaiting:
      return "Waiting";
    case JobStatus::kRunning:
      return "Running";
    case JobStatus::kCompleted:
      return "Completed";
    case JobStatus::kFailed:
      return "Failed";
    case JobStatus::kSuspended:
      return "Suspended";
  }
  return "Unknown";
}

std::string_view statusName(JobStatus status) {
  switch (status) {
    case JobStatus::kWaiting:
      return "WAITING";
    case JobStatus::kRunning:
      return "RUNNING";
    case JobStatus::kCompleted:
      return "COMPLETED";
    case JobStatus::kFailed:
      return "FAILED";
    case JobStatus::kSuspended:
      return "SUSPENDED";
  }
  return "UNKNOWN";
}

std::optional<JobStatus> statusFromValue(int value) {
  if (value < 0 || value > 4) {
    return std::nullopt;
  }
  return static_cast<JobStatus>(value);
}

bool isValidTransition(JobStatus from, JobStatus to) {
  return kTransitions[index(from)][index(to)];
}

std::string invalidTransitionMessage(JobStatus from, JobStatus to) {
  std::string message = "Transition from ";
  message += statusTitle(from);
  message += " to ";
  message += statusTitle(to);
  message += " is invalid.";
  return message;
}

void checkTransition(JobStatus from, JobStatus to) {
  if (!isValidTransition(from, to)) {
    throw TransitionError(invalidTransitionMessage(from, to));
  }
}

std::string_view actionName(OperatorAction action) {
  switch (action) {
    case OperatorAction::kRetry:
      return "retry";
    case OperatorAction::kSuspend:
      return "suspend";
    case OperatorAction::kResume:
      return "resume";
    case OperatorAction::kCancel:
      return "cancel";
  }
  return "unknown";
}

JobStatus actionTarget(OperatorAction action) {
  switch (action) {
    case OperatorAction::kRetry:
    case OperatorAction::kResume:
      return JobStatus::kWaiting;
    case OperatorAction::kSuspend:
      return JobStatus::kSuspended;
    case OperatorAction::kCancel:
      return JobStatus::kFailed;
  }
  return JobStatus::kWaiting;
}

bool operatorMayApply(OperatorAction action, JobStatus from) {
  JobStatus to = actionTarget(action);
  if (!isValidTransition(from, to)) {
    return false;
  }
  switch (action) {
    case OperatorAction::kRetry:
      // A running job belongs to its lease holder; it is requeued by the
      // daemon (retry, release) or the rescuer, never by hand.
      return from != JobStatus::kRunning && from != JobStatus::kSuspended;
    case OperatorAction::kResume:
      return from == JobStatus::kSuspended;
    case OperatorAction::kSuspend:
    case OperatorAction::kCancel:
      return true;
  }
  return false;
}

void checkOperatorAction(OperatorAction action, JobStatus from) {
  if (!operatorMayApply(action, from)) {
    throw TransitionError(invalidTransitionMessage(from, actionTarget(action)));
  }
}

}  // namespace jobd
