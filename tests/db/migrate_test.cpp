#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <barrier>
#include <cctype>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "core/errors.hpp"
#include "store/migrations.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

// Everything migrate creates, as one comparable string: relations, indexes,
// functions, triggers and the version rows.
std::string catalogSnapshot(const TestDatabase& db) {
  return db.scalar(R"sql(
    SELECT concat_ws(' | ',
      (SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname)
         FROM pg_class WHERE relnamespace = 'jobd'::regnamespace),
      (SELECT string_agg(proname, ',' ORDER BY proname)
         FROM pg_proc WHERE pronamespace = 'jobd'::regnamespace),
      (SELECT string_agg(tgname, ',' ORDER BY tgname)
         FROM pg_trigger WHERE tgrelid = 'jobd.job'::regclass),
      (SELECT string_agg(version || '@' || applied_at, ',' ORDER BY version)
         FROM jobd.schema_version))
  )sql");
}

// A fresh database gets every migration; a second run changes nothing.
TEST(MigrateTest, SecondRunChangesNothing) {
  TestDatabase db(/*migrate=*/false);
  auto conn = db.connect();
  EXPECT_EQ(currentSchemaVersion(*conn), 0);
  MigrationResult first = Migrator(*conn).migrate();
  EXPECT_EQ(first.from, 0);
  EXPECT_EQ(first.to, requiredSchemaVersion());
  EXPECT_EQ(first.applied.size(), embeddedMigrations().size());
  std::string before = catalogSnapshot(db);
  EXPECT_THAT(before, ::testing::HasSubstr("job_unscheduled_idx:i"));

  MigrationResult second = Migrator(*conn).migrate();
  EXPECT_TRUE(second.applied.empty());
  EXPECT_EQ(second.from, requiredSchemaVersion());
  EXPECT_EQ(catalogSnapshot(db), before);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.schema_version"),
            std::to_string(embeddedMigrations().size()));
  EXPECT_TRUE(Migrator(*conn).pending().empty());
}

// Two migrations started at the same moment both succeed; one applies.
TEST(MigrateTest, TwoRunsConcurrently) {
  TestDatabase db(/*migrate=*/false);
  std::barrier start(2);
  std::size_t applied[2] = {0, 0};
  std::string errors[2];
  auto run = [&](int i) {
    try {
      auto conn = db.connect();
      start.arrive_and_wait();
      applied[i] = Migrator(*conn).migrate().applied.size();
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  };
  std::thread a(run, 0), b(run, 1);
  a.join();
  b.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  EXPECT_EQ(applied[0] + applied[1], embeddedMigrations().size());
  EXPECT_EQ(db.scalar("SELECT max(version) FROM jobd.schema_version"),
            std::to_string(requiredSchemaVersion()));
}

// A binary refuses a schema of another version, naming both versions.
TEST(MigrateTest, VersionMismatchNamesBothVersions) {
  TestDatabase db(/*migrate=*/false);
  auto conn = db.connect();
  try {
    checkSchemaVersion(*conn);
    FAIL() << "no exception on an empty database";
  } catch (const SchemaVersionError& e) {
    EXPECT_EQ(std::string(e.what()),
              "the database schema is at version 0 but this jobd needs version " +
                  std::to_string(requiredSchemaVersion()) + ": run jobd migrate");
  }
  Migrator(*conn).migrate();
  EXPECT_NO_THROW(checkSchemaVersion(*conn));
  int newer = requiredSchemaVersion() + 1;
  db.scalar("INSERT INTO jobd.schema_version (version) VALUES (" + std::to_string(newer) + ")");
  try {
    checkSchemaVersion(*conn);
    FAIL() << "no exception on a newer schema";
  } catch (const SchemaVersionError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("at version " + std::to_string(newer)));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("the binary is older than the schema"));
  }
  EXPECT_THROW(Migrator(*conn).migrate(), SchemaVersionError);
}

// A schema at version 6, and a long transaction that has read jobd.job
// (ACCESS SHARE, as any reader holds) and stays open.
struct HeldAtVersion6 {
  explicit HeldAtVersion6(const TestDatabase& db) : reader_conn(db.connect()) {
    {
      auto conn = db.connect();
      Migrator(*conn).migrate(6);
    }
    reader.exec("SELECT count(*) FROM jobd.job");
  }
  std::unique_ptr<pqxx::connection> reader_conn;
  pqxx::work reader{*reader_conn};
};

// An upgrade never makes production writes queue behind it (issue 18,
// item 8). A long transaction holds jobd.job (ACCESS SHARE, as any reader
// does) while version 7's ALTER TABLE needs ACCESS EXCLUSIVE: the
// migration waits at most lock_timeout, gives up, lets the writers that
// queued behind it through, and tries again; inserts meanwhile never wait
// for long. Before, the migration waited with no limit, and every insert
// queued behind it until the reader ended.
TEST(MigrateTest, AMigrationThatCannotTakeItsLockLetsWritesThroughAndTriesAgain) {
  TestDatabase db(false);
  HeldAtVersion6 held(db);

  std::string error;
  std::thread migrating([&] {
    try {
      auto conn = db.connect();
      Migrator(*conn, {std::chrono::milliseconds(200), 50, std::chrono::milliseconds(100)})
          .migrate();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  auto writer = db.connect();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  int inserts = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pqxx::work txn(*writer);
    txn.exec("SET LOCAL statement_timeout = '1s'");
    txn.exec("INSERT INTO jobd.job (job_type) VALUES ('noop')");
    txn.commit();
    ++inserts;
  }
  EXPECT_GT(inserts, 0);  // each one under its 1 s statement_timeout
  EXPECT_EQ(db.scalar("SELECT max(version) FROM jobd.schema_version"), "6");
  held.reader.commit();
  migrating.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(db.scalar("SELECT max(version) FROM jobd.schema_version"),
            std::to_string(requiredSchemaVersion()));
}

// One that never gets its lock fails with a clear error and leaves the
// schema where it was.
TEST(MigrateTest, AMigrationThatNeverGetsItsLockSaysWhy) {
  TestDatabase db(false);
  HeldAtVersion6 held(db);
  auto conn = db.connect();
  try {
    Migrator(*conn, {std::chrono::milliseconds(100), 3, std::chrono::milliseconds(10)}).migrate();
    FAIL() << "migrated while a transaction held jobd.job";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(),
                ::testing::HasSubstr("migration 7 (0007_acquire_exact) could not take its "
                                     "locks in 3 tries"));
  }
  held.reader.commit();
  EXPECT_EQ(db.scalar("SELECT max(version) FROM jobd.schema_version"), "6");
}

// The part outside the transaction (CREATE INDEX CONCURRENTLY) is under
// the same lock_timeout and tries (review of issue 18): an old transaction
// that holds the build up makes it give up with a clear error, and the
// next run builds a valid index once that transaction has ended.
TEST(MigrateTest, ABuildHeldUpByAnOldTransactionGivesUpAndIsBuiltNextTime) {
  TestDatabase db(false);
  {
    auto conn = db.connect();
    Migrator(*conn).migrate(6);
  }
  auto old_conn = db.connect();
  pqxx::work old(*old_conn);
  old.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
  old.exec("SELECT count(*) FROM jobd.schema_version");
  auto conn = db.connect();
  try {
    Migrator(*conn, {std::chrono::milliseconds(200), 2, std::chrono::milliseconds(10)}).migrate(7);
    FAIL() << "built an index while an older transaction was open";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("migration 7 (0007_acquire_exact): a statement "
                                               "outside its transaction could not take its "
                                               "locks in 2 tries"));
  }
  EXPECT_EQ(db.scalar("SELECT max(version) FROM jobd.schema_version"), "6");
  old.commit();
  Migrator(*conn).migrate();
  EXPECT_EQ(db.scalar("SELECT indisvalid FROM pg_index "
                      "WHERE indexrelid = 'jobd.job_failed_idx'::regclass"),
            "t");
  EXPECT_EQ(db.scalar("SELECT max(version) FROM jobd.schema_version"),
            std::to_string(requiredSchemaVersion()));
}

// The migrations that take a table lock on jobd.job in their transaction
// (an ALTER TABLE, a trigger, a foreign key to it, a LOCK, COMMENT,
// TRUNCATE or RULE, a plain DROP INDEX) are the ones that docs/schema.md's
// table under "Migrations" lists (its concurrent builds aside): a new one
// must be added there, with what it blocks and for how long.
TEST(MigrateTest, TheMigrationsThatLockTheJobTableAreTheDocumentedOnes) {
  std::set<int> locking;
  const std::regex strong(
      "(ALTER TABLE|TRIGGER|REFERENCES|LOCK TABLE|COMMENT ON TABLE|TRUNCATE|CREATE (OR REPLACE "
      ")?RULE)[^;]* jobd\\.job[ ;(]|DROP INDEX (?!CONCURRENTLY)[^;]*jobd\\.job_",
      std::regex::icase);
  for (const Migration& m : embeddedMigrations()) {
    std::istringstream lines(splitMigration(m.sql).in_transaction);
    std::string code;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("--", 0) != 0) {
        code += line + " ";
      }
    }
    if (m.version > 1 && std::regex_search(code, strong)) {
      locking.insert(m.version);
    }
  }
  std::ifstream docs(std::string(JOBD_SOURCE_DIR) + "/docs/schema.md");
  std::set<int> documented;
  bool in_table = false;
  for (std::string line; std::getline(docs, line);) {
    if (line.rfind("| Version | Statement |", 0) == 0) {
      in_table = true;
    } else if (in_table && line.rfind("|---", 0) == 0) {
      continue;
    } else if (in_table && line.rfind("| ", 0) != 0) {
      break;
    } else if (in_table && line.find("CONCURRENTLY") == std::string::npos &&
               std::isdigit(static_cast<unsigned char>(line[2])) != 0 &&
               std::stoi(line.substr(2)) > 1) {
      documented.insert(std::stoi(line.substr(2)));
    }
  }
  EXPECT_FALSE(documented.empty());
  EXPECT_EQ(locking, documented);
}

// Every index that a migration after the first adds to jobd.job is built
// CONCURRENTLY (outside the transaction), so that enqueues go on during
// the build; the first migration makes the table, empty. And the index of
// version 7 comes out valid, also when a failed build left an invalid one. (An index
// that a newer one replaces is dropped CONCURRENTLY too.)
TEST(MigrateTest, IndexesOnTheJobTableAreBuiltConcurrently) {
  for (const Migration& m : embeddedMigrations()) {
    if (m.version == 1) {
      continue;
    }
    MigrationParts parts = splitMigration(m.sql);
    SCOPED_TRACE(m.name);
    // Statements, not comments: each line that is not one.
    std::istringstream lines(parts.in_transaction);
    std::string code;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("--", 0) != 0) {
        code += line + " ";
      }
    }
    EXPECT_FALSE(std::regex_search(code, std::regex("CREATE (UNIQUE )?INDEX[^;]* ON jobd\\.job ")))
        << code;
    for (const std::string& statement : parts.outside) {
      EXPECT_TRUE(statement.rfind("CREATE INDEX CONCURRENTLY IF NOT EXISTS ", 0) == 0 ||
                  statement.rfind("DROP INDEX CONCURRENTLY IF EXISTS ", 0) == 0)
          << statement;
    }
  }
  TestDatabase db(false);
  auto conn = db.connect();
  Migrator(*conn).migrate(6);
  pqxx::nontransaction(*conn).exec(
      "CREATE INDEX job_failed_idx ON jobd.job (job_type) WHERE status = 3; "
      "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'jobd.job_failed_idx'::regclass");
  Migrator(*conn).migrate();
  EXPECT_EQ(db.scalar("SELECT indisvalid::text || ' ' || pg_get_indexdef(indexrelid) FROM pg_index "
                      "WHERE indexrelid = 'jobd.job_failed_idx'::regclass"),
            "true CREATE INDEX job_failed_idx ON jobd.job USING btree (job_type, date_finished) "
            "WHERE (status = 3)");
}

}  // namespace
}  // namespace jobd::store
