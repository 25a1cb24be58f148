// The schema migrations compiled into the binary (lib/store/migrations/*.sql,
// embedded by cmake/GenerateMigrations.cmake), and the Migrator that applies
// them. Used by `jobd migrate`, by the daemon's start-up version check and by
// the test harness. One connection, the caller's thread.
#pragma once

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

class Migrator {
 public:
  explicit Migrator(pqxx::connection_base& conn) : conn_(conn) {}

  // Applies every pending migration in one transaction under an advisory
  // lock, so that concurrent runs serialise and the later ones find nothing
  // to do. Throws SchemaVersionError if the database is newer than the binary.
  MigrationResult migrate();

  // The migrations that migrate() would apply now, without applying them.
  std::vector<const Migration*> pending();

 private:
  pqxx::connection_base& conn_;
};

}  // namespace jobd::store
