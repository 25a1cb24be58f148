// TestDatabase: a fresh PostgreSQL database for one test, created from the
// libpq environment (PG* variables, set by pg_virtualenv in scripts/test.sh)
// and dropped afterwards, so tests run in parallel without sharing state.
// Used from the test's main thread.
#pragma once

#include <memory>
#include <pqxx/pqxx>
#include <string>

namespace jobd::testing {

class TestDatabase {
 public:
  // Creates the database and, when migrate is true, applies every migration.
  explicit TestDatabase(bool migrate = true);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& name() const { return name_; }
  // A conninfo for this database: "dbname=<name>", the rest from PG*.
  const std::string& conninfo() const { return conninfo_; }
  std::unique_ptr<pqxx::connection> connect() const;

  // Runs sql and returns the first column of the first row as text ("" for
  // NULL); for short assertions.
  std::string scalar(const std::string& sql) const;

 private:
  std::string name_;
  std::string conninfo_;
};

}  // namespace jobd::testing
