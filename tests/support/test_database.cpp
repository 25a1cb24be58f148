#include "test_database.hpp"

#include <unistd.h>

#include <atomic>
#include <random>
#include <stdexcept>

#include "store/migrations.hpp"

namespace jobd::testing {
namespace {

std::unique_ptr<pqxx::connection> adminConnection() {
  try {
    return std::make_unique<pqxx::connection>("");
  } catch (const pqxx::broken_connection& e) {
    throw std::runtime_error(
        std::string("no PostgreSQL for the database tests (run them through scripts/test.sh, "
                    "or set the PG* variables): ") +
        e.what());
  }
}

std::string uniqueName() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return "jobd_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" +
         std::to_string(rd() % 100000);
}

}  // namespace

TestDatabase::TestDatabase(bool migrate) : name_(uniqueName()), conninfo_("dbname=" + name_) {
  auto admin = adminConnection();
  pqxx::nontransaction(*admin).exec("CREATE DATABASE " + admin->quote_name(name_) +
                                    " TEMPLATE template0");
  if (migrate) {
    auto conn = connect();
    store::Migrator(*conn).migrate();
  }
}

TestDatabase::~TestDatabase() {
  try {
    auto admin = adminConnection();
    pqxx::nontransaction(*admin).exec("DROP DATABASE IF EXISTS " + admin->quote_name(name_) +
                                      " WITH (FORCE)");
  } catch (const std::exception&) {
    // The cluster is thrown away with the test run anyway.
  }
}

std::unique_ptr<pqxx::connection> TestDatabase::connect() const {
  return std::make_unique<pqxx::connection>(conninfo_);
}

std::string TestDatabase::scalar(const std::string& sql) const {
  auto conn = connect();
  pqxx::work txn(*conn);
  pqxx::result r = txn.exec(sql);
  txn.commit();
  if (r.empty() || r[0][0].is_null()) {
    return "";
  }
  return r[0][0].c_str();
}

}  // namespace jobd::testing
