// JobStatus and Launchpad's transition table (SPEC §4.3), plus the operator's
// actions. Pure functions with no I/O; used by the store before it writes a
// status and by the CLI to explain refusals. Safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jobd {

// Values as stored in jobd.job.status (Launchpad's JobStatus).
enum class JobStatus : std::int16_t {
  kWaiting = 0,
  kRunning = 1,
  kCompleted = 2,
  kFailed = 3,
  kSuspended = 4,
};

inline constexpr std::array<JobStatus, 5> kAllJobStatuses = {
    JobStatus::kWaiting, JobStatus::kRunning, JobStatus::kCompleted, JobStatus::kFailed,
    JobStatus::kSuspended};

// "Waiting", "Running", ... as Launchpad titles them.
std::string_view statusTitle(JobStatus status);
// "WAITING", "RUNNING", ... as jobd prints them.
std::string_view statusName(JobStatus status);
// The status for a stored smallint, or nullopt when it is out of range.
std::optional<JobStatus> statusFromValue(int value);

// Whether SPEC §4.3's table allows from -> to.
bool isValidTransition(JobStatus from, JobStatus to);

// "Transition from <Old> to <New> is invalid."
std::string invalidTransitionMessage(JobStatus from, JobStatus to);

// Throws TransitionError with Launchpad's message unless from -> to is valid.
void checkTransition(JobStatus from, JobStatus to);

// The operator's state changes (jobd retry/suspend/resume/cancel). Each has a
// narrower set of starting states than the table: retry works from FAILED,
// COMPLETED and WAITING only, resume from SUSPENDED only.
enum class OperatorAction { kRetry, kSuspend, kResume, kCancel };

std::string_view actionName(OperatorAction action);
JobStatus actionTarget(OperatorAction action);
bool operatorMayApply(OperatorAction action, JobStatus from);

// Throws TransitionError with Launchpad's message when the operator may not
// apply action to a job in status from.
void checkOperatorAction(OperatorAction action, JobStatus from);

}  // namespace jobd
