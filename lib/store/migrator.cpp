#include <string>

#include "core/errors.hpp"
#include "store/migrations.hpp"

namespace jobd::store {
namespace {

// pg_advisory_xact_lock key for `jobd migrate`: "jobdmigr" as ASCII.
constexpr long long kMigrationLockKey = 0x6a6f62646d696772LL;

int versionIn(pqxx::transaction_base& txn) {
  pqxx::result exists = txn.exec("SELECT to_regclass('jobd.schema_version') IS NOT NULL");
  if (!exists[0][0].as<bool>()) {
    return 0;
  }
  pqxx::result r = txn.exec("SELECT COALESCE(max(version), 0) FROM jobd.schema_version");
  return r[0][0].as<int>();
}

SchemaVersionError newerThanBinary(int found) {
  return SchemaVersionError("the database schema is at version " + std::to_string(found) +
                            ", newer than version " + std::to_string(requiredSchemaVersion()) +
                            " that this jobd knows: the binary is older than the schema; "
                            "upgrade jobd");
}

std::vector<const Migration*> after(int version) {
  std::vector<const Migration*> out;
  for (const Migration& m : embeddedMigrations()) {
    if (m.version > version) {
      out.push_back(&m);
    }
  }
  return out;
}

}  // namespace

int requiredSchemaVersion() {
  return embeddedMigrations().back().version;
}

int currentSchemaVersion(pqxx::connection_base& conn) {
  pqxx::read_transaction txn(conn);
  return versionIn(txn);
}

void checkSchemaVersion(pqxx::connection_base& conn) {
  int found = currentSchemaVersion(conn);
  int needed = requiredSchemaVersion();
  if (found > needed) {
    throw newerThanBinary(found);
  }
  if (found < needed) {
    throw SchemaVersionError("the database schema is at version " + std::to_string(found) +
                             " but this jobd needs version " + std::to_string(needed) +
                             ": run jobd migrate");
  }
}

std::vector<const Migration*> Migrator::pending() {
  int found = currentSchemaVersion(conn_);
  if (found > requiredSchemaVersion()) {
    throw newerThanBinary(found);
  }
  return after(found);
}

MigrationResult Migrator::migrate() {
  pqxx::work txn(conn_);
  txn.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")");
  MigrationResult result;
  result.from = versionIn(txn);
  if (result.from > requiredSchemaVersion()) {
    throw newerThanBinary(result.from);
  }
  for (const Migration* m : after(result.from)) {
    txn.exec(m->sql);
    txn.exec("INSERT INTO jobd.schema_version (version) VALUES (" + std::to_string(m->version) +
             ")");
    result.applied.push_back(m);
  }
  txn.commit();
  result.to = result.applied.empty() ? result.from : result.applied.back()->version;
  return result;
}

}  // namespace jobd::store
