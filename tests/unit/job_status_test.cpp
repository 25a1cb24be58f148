#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "core/job_status.hpp"

namespace jobd {
namespace {

// SPEC §4.3, row by row: the cells that hold a transition.
bool expectedValid(JobStatus from, JobStatus to) {
  using S = JobStatus;
  switch (from) {
    case S::kWaiting:
      return to == S::kWaiting || to == S::kRunning || to == S::kFailed || to == S::kSuspended;
    case S::kRunning:
      return to == S::kWaiting || to == S::kCompleted || to == S::kFailed || to == S::kSuspended;
    case S::kCompleted:
    case S::kFailed:
      return to == S::kWaiting;
    case S::kSuspended:
      return to == S::kWaiting || to == S::kFailed;
  }
  return false;
}

// Every one of the 25 cells: legal ones pass, illegal ones throw Launchpad's message.
TEST(JobStatusTest, EveryCellOfTheTransitionTable) {
  int valid = 0;
  for (JobStatus from : kAllJobStatuses) {
    for (JobStatus to : kAllJobStatuses) {
      SCOPED_TRACE(std::string(statusTitle(from)) + " -> " + std::string(statusTitle(to)));
      EXPECT_EQ(isValidTransition(from, to), expectedValid(from, to));
      if (expectedValid(from, to)) {
        EXPECT_NO_THROW(checkTransition(from, to));
        ++valid;
      } else {
        try {
          checkTransition(from, to);
          ADD_FAILURE() << "no exception";
        } catch (const TransitionError& e) {
          EXPECT_EQ(std::string(e.what()), "Transition from " + std::string(statusTitle(from)) +
                                               " to " + std::string(statusTitle(to)) +
                                               " is invalid.");
        }
      }
    }
  }
  EXPECT_EQ(valid, 12);
}

// The exact wording of a few refusals, spelled out rather than computed.
TEST(JobStatusTest, LaunchpadMessagesVerbatim) {
  EXPECT_EQ(invalidTransitionMessage(JobStatus::kCompleted, JobStatus::kRunning),
            "Transition from Completed to Running is invalid.");
  EXPECT_EQ(invalidTransitionMessage(JobStatus::kSuspended, JobStatus::kSuspended),
            "Transition from Suspended to Suspended is invalid.");
  EXPECT_EQ(invalidTransitionMessage(JobStatus::kWaiting, JobStatus::kCompleted),
            "Transition from Waiting to Completed is invalid.");
}

// The values stored in jobd.job.status are Launchpad's.
TEST(JobStatusTest, StoredValues) {
  EXPECT_EQ(static_cast<int>(JobStatus::kWaiting), 0);
  EXPECT_EQ(static_cast<int>(JobStatus::kRunning), 1);
  EXPECT_EQ(static_cast<int>(JobStatus::kCompleted), 2);
  EXPECT_EQ(static_cast<int>(JobStatus::kFailed), 3);
  EXPECT_EQ(static_cast<int>(JobStatus::kSuspended), 4);
  EXPECT_EQ(statusFromValue(4), JobStatus::kSuspended);
  EXPECT_FALSE(statusFromValue(5).has_value());
  EXPECT_FALSE(statusFromValue(-1).has_value());
}

// The operator's commands: retry from FAILED, COMPLETED and WAITING only;
// resume from SUSPENDED only; suspend and cancel where the table allows.
TEST(JobStatusTest, OperatorActionsFollowTheTable) {
  using S = JobStatus;
  using A = OperatorAction;
  struct Case {
    A action;
    S from;
    bool allowed;
  };
  const Case cases[] = {
      {A::kRetry, S::kWaiting, true},      {A::kRetry, S::kRunning, false},
      {A::kRetry, S::kCompleted, true},    {A::kRetry, S::kFailed, true},
      {A::kRetry, S::kSuspended, false},   {A::kResume, S::kWaiting, false},
      {A::kResume, S::kRunning, false},    {A::kResume, S::kCompleted, false},
      {A::kResume, S::kFailed, false},     {A::kResume, S::kSuspended, true},
      {A::kSuspend, S::kWaiting, true},    {A::kSuspend, S::kRunning, true},
      {A::kSuspend, S::kCompleted, false}, {A::kSuspend, S::kFailed, false},
      {A::kSuspend, S::kSuspended, false}, {A::kCancel, S::kWaiting, true},
      {A::kCancel, S::kRunning, true},     {A::kCancel, S::kCompleted, false},
      {A::kCancel, S::kFailed, false},     {A::kCancel, S::kSuspended, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(actionName(c.action)) + " from " + std::string(statusTitle(c.from)));
    EXPECT_EQ(operatorMayApply(c.action, c.from), c.allowed);
    if (!c.allowed) {
      EXPECT_THROW(checkOperatorAction(c.action, c.from), TransitionError);
    }
  }
  try {
    checkOperatorAction(A::kResume, S::kWaiting);
    ADD_FAILURE() << "no exception";
  } catch (const TransitionError& e) {
    EXPECT_STREQ(e.what(), "Transition from Waiting to Waiting is invalid.");
  }
}

}  // namespace
}  // namespace jobd
