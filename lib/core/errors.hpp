// The exception types of libjobd. main() maps each to an exit status (SPEC §2):
// UsageError 64, DataError 65, ConfigError 78, every other jobd::Error 1.
// Thrown from any thread; caught at command or service boundaries.
#pragma once

#include <stdexcept>
#include <string>

namespace jobd {

// A runtime failure: no such job, a database error, an illegal transition.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The command line is wrong (EX_USAGE).
class UsageError : public Error {
 public:
  using Error::Error;
};

// Input data is wrong: invalid JSON, an oversized payload (EX_DATAERR).
class DataError : public Error {
 public:
  using Error::Error;
};

// The configuration is invalid (EX_CONFIG).
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A requested job does not exist.
class NotFoundError : public Error {
 public:
  using Error::Error;
};

// A status change that SPEC §4.3 does not allow; what() is Launchpad's message.
class TransitionError : public Error {
 public:
  using Error::Error;
};

// The database schema is not the version this binary needs.
class SchemaVersionError : public Error {
 public:
  using Error::Error;
};

// The first line of an error message, without libpq's "ERROR:  " prefix:
// what a log line or a one-line CLI error shows of a database error.
inline std::string errorLine(const std::string& message) {
  std::string line = message.substr(0, message.find('\n'));
  const std::string prefix = "ERROR:  ";
  return line.rfind(prefix, 0) == 0 ? line.substr(prefix.size()) : line;
}

}  // namespace jobd
