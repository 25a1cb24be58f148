// The schema migrations compiled into the binary (lib/store/migrations/*.sql,
// embedded by cmake/GenerateMigrations.cmake), and the Migrator that applies
// them. Used by `jobd migrate`, by the daemon's start-up version check and by
// the test harness. One connection, the caller's thread.
#pragma once

#include <chrono>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace jobd::store {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// Every migration, ascending by version; versions are 1, 2, 3, ... .
const std::vector<Migration>& embeddedMigrations();

// The schema version this binary needs: the last migration's.
int requiredSchemaVersion();

// The version recorded in jobd.schema_version; 0 when there is no schema.
int currentSchemaVersion(pqxx::connection_base& conn);

// Throws SchemaVersionError unless the database is at requiredSchemaVersion(),
// saying which version it found and what to do.
void checkSchemaVersion(pqxx::connection_base& conn);

struct MigrationResult {
  int from = 0;
  int to = 0;
  std::vector<const Migration*> applied;
};

// How long a migration waits for its locks. Production writes must never
// queue behind a migration that waits behind a long transaction: each
// transactional part runs with lock_timeout, and one that times out is
// rolled back and tried again after a pause, up to `tries` times.
struct MigrationLocks {
  std::chrono::milliseconds lock_timeout = std::chrono::seconds(5);
  int tries = 10;
  std::chrono::milliseconds pause = std::chrono::seconds(2);
};

class Migrator {
 public:
  explicit Migrator(pqxx::connection_base& conn, MigrationLocks locks = {})
      : conn_(conn), locks_(locks) {}

  // Applies every pending migration (up to `to`, if given), each in a
  // transaction of its own, then the statements it has after a
  // `-- jobd:outside-transaction` line (CREATE INDEX CONCURRENTLY), each on
  // its own, then its version row. Under a session advisory lock, so that
  // concurrent runs serialise and the later ones find nothing to do.
  // Throws SchemaVersionError if the database is newer than the binary,
  // Error when a migration could not take its locks in `tries` tries.
  MigrationResult migrate(std::optional<int> to = std::nullopt);

  // The migrations that migrate() would apply now, without applying them.
  std::vector<const Migration*> pending();

  // What apply() runs for m, as a psql script (`jobd migrate --dry-run`):
  // its transactional part between BEGIN and COMMIT under lock_timeout,
  // then the statements outside any transaction, then its version row.
  std::string script(const Migration& m) const;

 private:
  void apply(const Migration& m);

  pqxx::connection_base& conn_;
  MigrationLocks locks_;
};

// A migration's SQL split at its `-- jobd:outside-transaction` line: what
// runs in its transaction, then the statements (ended by `;` at a line's
// end) that must run outside one.
struct MigrationParts {
  std::string in_transaction;
  std::vector<std::string> outside;
};
MigrationParts splitMigration(const std::string& sql);

}  // namespace jobd::store
