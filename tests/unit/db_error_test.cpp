// store::classify (store/db_error.hpp): SQLSTATEs and libpqxx's exception
// types sorted into what the caller can do.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "store/db_error.hpp"

namespace jobd::store {
namespace {

// Each SQLSTATE the daemon acts on lands in its class; others are kOther.
TEST(DbErrorTest, SqlStatesByClass) {
  struct Case {
    const char* sqlstate;
    DbErrorClass expected;
  };
  for (const Case& c :
       {Case{"40001", DbErrorClass::kSerializationFailure}, Case{"40P01", DbErrorClass::kDeadlock},
        Case{"55P03", DbErrorClass::kLockNotAvailable},
        Case{"57014", DbErrorClass::kQueryCancelled}, Case{"23505", DbErrorClass::kUniqueViolation},
        Case{"08006", DbErrorClass::kConnectionLost}, Case{"08001", DbErrorClass::kConnectionLost},
        Case{"57P01", DbErrorClass::kConnectionLost}, Case{"23503", DbErrorClass::kOther},
        Case{"JR000", DbErrorClass::kOther}, Case{"", DbErrorClass::kOther}}) {
    EXPECT_EQ(classifySqlState(c.sqlstate), c.expected) << c.sqlstate;
  }
}

// libpqxx's exception types: a lost connection and a commit in doubt are
// told apart from SQL errors, which go by their SQLSTATE.
TEST(DbErrorTest, ExceptionTypes) {
  EXPECT_EQ(classify(pqxx::broken_connection("gone")), DbErrorClass::kConnectionLost);
  EXPECT_EQ(classify(pqxx::in_doubt_error("maybe")), DbErrorClass::kCommitInDoubt);
  EXPECT_EQ(classify(pqxx::sql_error("x", "SELECT 1", "40P01")), DbErrorClass::kDeadlock);
  EXPECT_EQ(classify(pqxx::deadlock_detected("x")), DbErrorClass::kDeadlock);
  EXPECT_EQ(classify(pqxx::serialization_failure("x")), DbErrorClass::kSerializationFailure);
  EXPECT_EQ(classify(pqxx::statement_completion_unknown("x")), DbErrorClass::kCommitInDoubt);
  EXPECT_EQ(classify(pqxx::unique_violation("x", "INSERT", "23505")),
            DbErrorClass::kUniqueViolation);
  EXPECT_EQ(classify(std::runtime_error("other")), DbErrorClass::kOther);
  EXPECT_TRUE(worthRetrying(DbErrorClass::kDeadlock));
  EXPECT_TRUE(worthRetrying(DbErrorClass::kUniqueViolation));
  EXPECT_FALSE(worthRetrying(DbErrorClass::kCommitInDoubt));
  EXPECT_FALSE(worthRetrying(DbErrorClass::kConnectionLost));
}

}  // namespace
}  // namespace jobd::store
