// Sorting database errors by what the caller can do about them (Kea's
// checkStatementError, libpqxx's transactor): a lost connection is
// reopened, a serialization failure, a deadlock or a unique violation
// against a racing daemon is tried again when the statement is safe to
// repeat, and anything else is reported. Used by the store and the runtime
// on any thread; no I/O.
#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace jobd::store {

enum class DbErrorClass {
  kConnectionLost,        // broken_connection, SQLSTATE class 08, an admin shutdown (57P0x)
  kCommitInDoubt,         // the commit's outcome is unknown: never repeat blindly
  kSerializationFailure,  // 40001
  kDeadlock,              // 40P01
  kLockNotAvailable,      // 55P03 (lock_timeout, NOWAIT)
  kQueryCancelled,        // 57014 (statement_timeout, pg_cancel_backend)
  kUniqueViolation,       // 23505
  kOther,
};

DbErrorClass classify(const std::exception& e);
// The same, from a SQLSTATE alone.
DbErrorClass classifySqlState(std::string_view sqlstate);
std::string_view errorClassName(DbErrorClass c);

// The SQLSTATE of a database error that carries one, class 40 included
// (libpqxx 6 throws it as transaction_rollback, without the code: 40001,
// 40P01, 40003 or 40000 by its type); "" for any other exception.
std::string sqlStateOf(const std::exception& e);

// Whether a statement that failed so, and that changed nothing when it
// failed (a single statement in its own transaction), may simply be sent
// again: a serialization failure, a deadlock, or a unique violation
// against a daemon that won a race.
bool worthRetrying(DbErrorClass c);

}  // namespace jobd::store
