#include <string>

#include <thread>

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

MigrationParts splitMigration(const std::string& sql) {
  static const std::string kMarker = "-- jobd:outside-transaction";
  MigrationParts parts;
  std::size_t at = sql.find("\n" + kMarker);
  if (at == std::string::npos) {
    parts.in_transaction = sql;
    return parts;
  }
  parts.in_transaction = sql.substr(0, at + 1);
  std::string statement;
  std::size_t line_start = sql.find('\n', at + 1);
  while (line_start != std::string::npos && line_start < sql.size()) {
    std::size_t line_end = sql.find('\n', line_start + 1);
    std::string line =
        sql.substr(line_start + 1,
                   line_end == std::string::npos ? std::string::npos : line_end - line_start - 1);
    line_start = line_end;
    if (line.rfind("--", 0) == 0 || (statement.empty() && line.empty())) {
      continue;
    }
    statement += line + "\n";
    std::size_t last = line.find_last_not_of(" \t\r");
    if (last != std::string::npos && line[last] == ';') {
      parts.outside.push_back(statement);
      statement.clear();
    }
  }
  if (statement.find_first_not_of(" \t\r\n") != std::string::npos) {
    parts.outside.push_back(statement);
  }
  return parts;
}

namespace {

// The index a `CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON ...`
// builds, or "": a build that failed half-way leaves an INVALID index of
// that name, which IF NOT EXISTS would keep for ever; it is dropped first.
std::string concurrentIndexName(const std::string& statement) {
  static const std::string kPrefix = "CREATE INDEX CONCURRENTLY IF NOT EXISTS ";
  if (statement.rfind(kPrefix, 0) != 0) {
    return "";
  }
  std::size_t end = statement.find(' ', kPrefix.size());
  return statement.substr(kPrefix.size(), end - kPrefix.size());
}

bool lockNotAvailable(const pqxx::sql_error& e) {
  return e.sqlstate() == "55P03";
}

}  // namespace

void Migrator::apply(const Migration& m) {
  MigrationParts parts = splitMigration(m.sql);
  for (int attempt = 1;; ++attempt) {
    try {
      pqxx::work txn(conn_);
      txn.exec("SET LOCAL lock_timeout = " + std::to_string(locks_.lock_timeout.count()));
      txn.exec(parts.in_transaction);
      if (parts.outside.empty()) {
        txn.exec("INSERT INTO jobd.schema_version (version) VALUES (" + std::to_string(m.version) +
                 ")");
      }
      txn.commit();
      break;
    } catch (const pqxx::sql_error& e) {
      if (!lockNotAvailable(e) || attempt >= locks_.tries) {
        if (lockNotAvailable(e)) {
          throw Error("migration " + std::to_string(m.version) + " (" + m.name +
                      ") could not take its locks in " + std::to_string(attempt) +
                      " tries of lock_timeout " + std::to_string(locks_.lock_timeout.count()) +
                      " ms: a long transaction holds a table it changes; nothing of it was "
                      "applied; run jobd migrate again once it ends");
        }
        throw;
      }
      std::this_thread::sleep_for(locks_.pause);
    }
  }
  if (parts.outside.empty()) {
    return;
  }
  // CREATE INDEX CONCURRENTLY: no lock that blocks writes, but it waits for
  // the transactions older than it; under the same lock_timeout, a build
  // that a long transaction holds up gives up (leaving an INVALID index,
  // dropped before the next try) and is tried again like the part above.
  pqxx::nontransaction outside(conn_);
  outside.exec("SET lock_timeout = " + std::to_string(locks_.lock_timeout.count()));
  for (const std::string& statement : parts.outside) {
    for (int attempt = 1;; ++attempt) {
      try {
        if (std::string index = concurrentIndexName(statement); !index.empty()) {
          pqxx::result invalid = outside.exec_params(
              "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
              "JOIN pg_namespace n ON n.oid = c.relnamespace "
              "WHERE n.nspname = 'jobd' AND c.relname = $1 AND NOT i.indisvalid",
              index);
          if (!invalid.empty()) {
            outside.exec("DROP INDEX CONCURRENTLY IF EXISTS jobd." + index);
          }
        }
        outside.exec(statement);
        break;
      } catch (const pqxx::sql_error& e) {
        if (!lockNotAvailable(e)) {
          throw;
        }
        if (attempt >= locks_.tries) {
          throw Error("migration " + std::to_string(m.version) + " (" + m.name +
                      "): a statement outside its transaction could not take its locks in " +
                      std::to_string(attempt) + " tries of lock_timeout " +
                      std::to_string(locks_.lock_timeout.count()) +
                      " ms: a long transaction holds it up; its transactional part is applied and "
                      "is applied again harmlessly; run jobd migrate again once it ends");
        }
        std::this_thread::sleep_for(locks_.pause);
      }
    }
  }
  outside.exec("RESET lock_timeout");
  outside.exec("INSERT INTO jobd.schema_version (version) VALUES (" + std::to_string(m.version) +
               ")");
}

std::string Migrator::script(const Migration& m) const {
  MigrationParts parts = splitMigration(m.sql);
  std::string version = std::to_string(m.version);
  std::string out =
      "-- migration " + version + ": " + m.name +
      "\nBEGIN;\nSET LOCAL lock_timeout = " + std::to_string(locks_.lock_timeout.count()) + ";\n" +
      parts.in_transaction;
  if (parts.outside.empty()) {
    return out + "INSERT INTO jobd.schema_version (version) VALUES (" + version + ");\nCOMMIT;\n";
  }
  out += "COMMIT;\n-- outside any transaction, one statement at a time\nSET lock_timeout = " +
         std::to_string(locks_.lock_timeout.count()) + ";\n";
  for (const std::string& statement : parts.outside) {
    out += statement;
  }
  return out + "RESET lock_timeout;\nINSERT INTO jobd.schema_version (version) VALUES (" + version +
         ");\n";
}

MigrationResult Migrator::migrate(std::optional<int> to) {
  // A session lock: a migration spans several transactions.
  // Polled, not waited for: a session waiting in pg_advisory_lock holds a
  // snapshot, which the other run's CREATE INDEX CONCURRENTLY would wait
  // for in turn (a deadlock).
  for (;;) {
    pqxx::nontransaction lock(conn_);
    if (lock.exec("SELECT pg_try_advisory_lock(" + std::to_string(kMigrationLockKey) + ")")[0][0]
            .as<bool>()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  struct Unlock {
    pqxx::connection_base& conn;
    ~Unlock() {
      try {
        pqxx::nontransaction unlock(conn);
        unlock.exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLockKey) + ")");
      } catch (const std::exception&) {
        // The connection is gone, and its session lock with it.
      }
    }
  } unlock{conn_};
  MigrationResult result;
  result.from = currentSchemaVersion(conn_);
  if (result.from > requiredSchemaVersion()) {
    throw newerThanBinary(result.from);
  }
  for (const Migration* m : after(result.from)) {
    if (to && m->version > *to) {
      break;
    }
    apply(*m);
    result.applied.push_back(m);
  }
  result.to = result.applied.empty() ? result.from : result.applied.back()->version;
  return result;
}

}  // namespace jobd::store
