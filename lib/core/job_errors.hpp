// The errors a handler raises to choose its job's outcome (SPEC §5):
// RetryError (requeue while attempts remain), UserError (FAILED, no OOPS,
// message in log, user-error notice) and SuspendJob (SUSPENDED). Anything
// else a handler throws is an OOPS. Each carries the type name that SPEC §5
// records as <Type>. Thrown on worker threads, caught by the JobExecutor.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

namespace jobd {

class JobError : public std::runtime_error {
 public:
  JobError(std::string type_name, const std::string& message)
      : std::runtime_error(message), type_name_(std::move(type_name)) {}
  const std::string& typeName() const { return type_name_; }

 private:
  std::string type_name_;
};

class RetryError : public JobError {
 public:
  explicit RetryError(const std::string& message, std::string type_name = "RetryError")
      : JobError(std::move(type_name), message) {}
};

// "Rate limited, retry after N" (an HTTP 429 from a remote): the job goes
// back to WAITING for retry_after without spending an attempt, and, for a
// section with a limit by key, its key starts nothing before then.
class RateLimited : public JobError {
 public:
  RateLimited(const std::string& message, std::chrono::milliseconds retry_after,
              std::string type_name = "RateLimited")
      : JobError(std::move(type_name), message), retry_after_(retry_after) {}
  std::chrono::milliseconds retryAfter() const { return retry_after_; }

 private:
  std::chrono::milliseconds retry_after_;
};

class UserError : public JobError {
 public:
  explicit UserError(const std::string& message, std::string type_name = "UserError")
      : JobError(std::move(type_name), message) {}
};

class SuspendJob : public JobError {
 public:
  explicit SuspendJob(const std::string& message, std::string type_name = "SuspendJob")
      : JobError(std::move(type_name), message) {}
};

// An OOPS with a chosen type name (the fail handler's FailError, the sql
// handler's SqlState<code>, exec's ExitStatus<N>) and, optionally, a
// traceback (for exec, the tail of stderr).
class OopsError : public JobError {
 public:
  OopsError(std::string type_name, const std::string& message, std::string traceback = "")
      : JobError(std::move(type_name), message), traceback_(std::move(traceback)) {}
  const std::string& traceback() const { return traceback_; }

 private:
  std::string traceback_;
};

// The job ran past its section's timeout and was stopped: FAILED with the
// OOPS TimeoutError "Job ran too long." and attempt outcome `timeout`.
class TimeoutError : public OopsError {
 public:
  explicit TimeoutError(std::string traceback = "")
      : OopsError("TimeoutError", "Job ran too long.", std::move(traceback)) {}
};

// A child process died of a signal that jobd did not send: FAILED with an
// OOPS and attempt outcome `crashed`.
class CrashError : public OopsError {
 public:
  CrashError(std::string type_name, const std::string& message, std::string traceback)
      : OopsError(std::move(type_name), message, std::move(traceback)) {}
};

// SPEC §5's outcome of database work that failed with `sqlstate`, the
// same whether a statement raised it or COMMIT did (a deferred trigger, a
// serialization failure under SERIALIZABLE): class 40 and JR000 retry,
// JU000 is a user error, JS000 suspends, anything else is an OOPS of type
// SqlState<code>.
[[noreturn]] inline void throwForSqlState(const std::string& sqlstate, const std::string& message) {
  std::string type = "SqlState" + sqlstate;
  if (sqlstate.rfind("40", 0) == 0 || sqlstate == "JR000") {
    throw RetryError(message, type);
  }
  if (sqlstate == "JU000") {
    throw UserError(message, type);
  }
  if (sqlstate == "JS000") {
    throw SuspendJob(message, type);
  }
  throw OopsError(type, message);
}

}  // namespace jobd
