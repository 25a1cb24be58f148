#include "store/db_error.hpp"

#include <pqxx/pqxx>

namespace jobd::store {

DbErrorClass classifySqlState(std::string_view sqlstate) {
  if (sqlstate == "40001") {
    return DbErrorClass::kSerializationFailure;
  }
  if (sqlstate == "40P01") {
    return DbErrorClass::kDeadlock;
  }
  if (sqlstate == "55P03") {
    return DbErrorClass::kLockNotAvailable;
  }
  if (sqlstate == "57014") {
    return DbErrorClass::kQueryCancelled;
  }
  if (sqlstate == "23505") {
    return DbErrorClass::kUniqueViolation;
  }
  // 08: connection exception; 57P01-57P03: admin or crash shutdown, cannot
  // connect now.
  if (sqlstate.substr(0, 2) == "08" || sqlstate == "57P01" || sqlstate == "57P02" ||
      sqlstate == "57P03") {
    return DbErrorClass::kConnectionLost;
  }
  return DbErrorClass::kOther;
}

DbErrorClass classify(const std::exception& e) {
  // in_doubt_error first: the commit may have landed.
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::statement_completion_unknown*>(&e) != nullptr) {
    return DbErrorClass::kCommitInDoubt;
  }
  // libpqxx 6 throws class 40 as transaction_rollback, which is no sql_error.
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) {
    return DbErrorClass::kDeadlock;
  }
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr) {
    return DbErrorClass::kSerializationFailure;
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return DbErrorClass::kConnectionLost;
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    return classifySqlState(sql->sqlstate());
  }
  return DbErrorClass::kOther;
}

std::string sqlStateOf(const std::exception& e) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    return sql->sqlstate();
  }
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) == nullptr) {
    return "";
  }
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr) {
    return "40001";
  }
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) {
    return "40P01";
  }
  if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e) != nullptr) {
    return "40003";
  }
  return "40000";
}

std::string_view errorClassName(DbErrorClass c) {
  switch (c) {
    case DbErrorClass::kConnectionLost:
      return "connection_lost";
    case DbErrorClass::kCommitInDoubt:
      return "commit_in_doubt";
    case DbErrorClass::kSerializationFailure:
      return "serialization_failure";
    case DbErrorClass::kDeadlock:
      return "deadlock";
    case DbErrorClass::kLockNotAvailable:
      return "lock_not_available";
    case DbErrorClass::kQueryCancelled:
      return "query_cancelled";
    case DbErrorClass::kUniqueViolation:
      return "unique_violation";
    case DbErrorClass::kOther:
      return "other";
  }
  return "other";
}

bool worthRetrying(DbErrorClass c) {
  return c == DbErrorClass::kSerializationFailure || c == DbErrorClass::kDeadlock ||
         c == DbErrorClass::kUniqueViolation;
}

}  // namespace jobd::store
