#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <barrier>
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
  EXPECT_THAT(before, ::testing::HasSubstr("job_ready_idx:i"));

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

}  // namespace
}  // namespace jobd::store
