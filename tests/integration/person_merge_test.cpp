// person_merge: every foreign key that references person is found in the
// catalog and re-pointed; rows that would break a unique constraint are
// removed; the duplicate is marked merged, in the job's own transaction.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;

constexpr const char* kSchema = R"sql(
CREATE TABLE person (id integer PRIMARY KEY, name text NOT NULL,
                     merged_into integer REFERENCES person (id));
CREATE TABLE email (id serial PRIMARY KEY, person integer NOT NULL REFERENCES person (id),
                    address text NOT NULL);
CREATE TABLE team_membership (team text NOT NULL, member integer NOT NULL REFERENCES person (id),
                              UNIQUE (team, member));
CREATE TABLE profile (owner integer UNIQUE REFERENCES person (id), bio text);
CREATE TABLE karma (person integer REFERENCES person (id), points integer);
CREATE TABLE unrelated (person integer, note text);
INSERT INTO person (id, name) VALUES (1, 'Target'), (2, 'Duplicate'), (3, 'Other'), (4, 'Old');
UPDATE person SET merged_into = 2 WHERE id = 4;
INSERT INTO email (person, address) VALUES (1, 't@example.com'), (2, 'd1@example.com'),
                                           (2, 'd2@example.com'), (3, 'o@example.com');
INSERT INTO team_membership VALUES ('ubuntu', 1), ('ubuntu', 2), ('kernel', 2), ('ubuntu', 3);
INSERT INTO profile VALUES (1, 'target bio'), (2, 'duplicate bio');
INSERT INTO karma VALUES (2, 10), (2, 20), (1, 5);
INSERT INTO unrelated VALUES (2, 'not a foreign key');
)sql";

constexpr const char* kConfig = "[person_merge]\nmax_retries: 1\n";

std::string rows(const TestDatabase& db, const std::string& sql) {
  return db.scalar("SELECT string_agg(r::text, ' ' ORDER BY r::text) FROM (" + sql + ") AS r");
}

TEST(PersonMergeTest, MergesRowByRow) {
  TestDatabase db;
  db.scalar(kSchema);
  Daemon daemon(db, kConfig);
  ASSERT_TRUE(daemon.waitReady());
  std::string id = db.scalar("SELECT jobd.enqueue('person_merge', '{\"from\": 2, \"to\": 1}')");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2"), "2")
      << db.scalar("SELECT log FROM jobd.job WHERE id = " + id);
  EXPECT_EQ(rows(db, "SELECT id, merged_into FROM person"), "(1,) (2,1) (3,) (4,1)");
  EXPECT_EQ(rows(db, "SELECT person, address FROM email"),
            "(1,d1@example.com) (1,d2@example.com) (1,t@example.com) (3,o@example.com)");
  // ('ubuntu', 2) would collide with ('ubuntu', 1): removed; 'kernel' moves.
  EXPECT_EQ(rows(db, "SELECT team, member FROM team_membership"),
            "(kernel,1) (ubuntu,1) (ubuntu,3)");
  // profile.owner is unique by itself: the target's profile stands.
  EXPECT_EQ(rows(db, "SELECT owner, bio FROM profile"), "(1,\"target bio\")");
  EXPECT_EQ(rows(db, "SELECT person, points FROM karma"), "(1,10) (1,20) (1,5)");
  EXPECT_EQ(rows(db, "SELECT person, note FROM unrelated"), "(2,\"not a foreign key\")");
  EXPECT_THAT(daemon.log(), HasSubstr("PERSON_MERGE person 2 into 1"));
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

TEST(PersonMergeTest, BadMergesAreUserErrors) {
  TestDatabase db;
  db.scalar(kSchema);
  Daemon daemon(db, kConfig);
  ASSERT_TRUE(daemon.waitReady());
  struct Case {
    const char* data;
    const char* log;
  };
  for (const Case& c :
       {Case{R"({"from": 1, "to": 1})", "person_merge: cannot merge row 1 into itself"},
        Case{R"({"from": 99, "to": 1})", "person_merge: no person row with id 99"},
        Case{R"({"from": 4, "to": 1})", "person_merge: person 4 is already merged into 2"},
        Case{R"({"from": "x"})", "person_merge: json_data.to must be the key of a row"}}) {
    SCOPED_TRACE(c.data);
    std::string id =
        db.scalar(std::string("SELECT jobd.enqueue('person_merge', '") + c.data + "')");
    EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "3"), "3");
    EXPECT_THAT(db.scalar("SELECT log FROM jobd.job WHERE id = " + id), HasSubstr(c.log));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops WHERE job_id = " + id), "0");
  }
  EXPECT_EQ(rows(db, "SELECT id, merged_into FROM person"), "(1,) (2,) (3,) (4,2)");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// kill -9 of the daemon in the middle of a long merge: nothing of it is
// visible; the rescued retry on another daemon merges once.
TEST(PersonMergeTest, KilledMidMergeLeavesNothingHalfDone) {
  TestDatabase db;
  db.scalar(kSchema);
  db.scalar(R"sql(
CREATE FUNCTION slow_karma() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$;
CREATE TRIGGER slow BEFORE UPDATE ON karma FOR EACH ROW EXECUTE FUNCTION slow_karma();
)sql");
  std::string config =
      "[jobd]\nrescue_interval: 1s\npoll_interval: 1s\n[person_merge]\nmax_retries: 1\n"
      "lease_duration: 2s\ntimeout: 1m\n";
  Daemon first(db, config);
  ASSERT_TRUE(first.waitReady());
  std::string id = db.scalar("SELECT jobd.enqueue('person_merge', '{\"from\": 2, \"to\": 1}')");
  ASSERT_EQ(waitForValue(db,
                         "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = "
                         "current_database() AND query LIKE 'UPDATE karma%'",
                         "true"),
            "true");
  first.process().signal(SIGKILL);
  first.process().wait();
  EXPECT_EQ(rows(db, "SELECT id, merged_into FROM person"), "(1,) (2,) (3,) (4,2)");
  EXPECT_EQ(rows(db, "SELECT person, address FROM email WHERE person = 2"),
            "(2,d1@example.com) (2,d2@example.com)");

  Daemon second(db, config);
  ASSERT_TRUE(second.waitReady());
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2",
                         std::chrono::seconds(30)),
            "2");
  EXPECT_EQ(rows(db, "SELECT id, merged_into FROM person"), "(1,) (2,1) (3,) (4,1)");
  EXPECT_EQ(rows(db, "SELECT person, points FROM karma"), "(1,10) (1,20) (1,5)");
  EXPECT_EQ(db.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + id), "2");
  EXPECT_EQ(db.scalar("SELECT outcome FROM jobd.job_attempt WHERE job_id = " + id),
            "lease_expired");
  EXPECT_EQ(second.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
