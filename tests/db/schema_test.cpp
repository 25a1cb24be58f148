#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

// A plain INSERT with only job_type gets every SPEC §4.1 default.
TEST(SchemaTest, PlainInsertWorks) {
  TestDatabase db;
  std::string id = db.scalar("INSERT INTO jobd.job (job_type) VALUES ('noop') RETURNING id");
  EXPECT_EQ(db.scalar("SELECT concat_ws(',', status, json_data, priority, attempt_count, "
                      "max_retries, target IS NULL, scheduled_start IS NULL, "
                      "date_created IS NOT NULL) FROM jobd.job WHERE id = " +
                      id),
            "0,{},0,0,0,t,t,t");
  std::string with_data = db.scalar(
      "INSERT INTO jobd.job (job_type, json_data, priority, target) "
      "VALUES ('email', '{\"to\": \"a@example.com\"}', 5, 'x') RETURNING id");
  EXPECT_EQ(db.scalar("SELECT json_data->>'to' FROM jobd.job WHERE id = " + with_data),
            "a@example.com");
}

// The columns are SPEC §4.1's, in order, with their types, then jobd's own
// additions: `acquired` (version 7: made by jobd.acquire) and `behind`
// (version 12: queued behind another job of its type and target) and
// `waited` (version 16: someone waits to hear that it finished).
TEST(SchemaTest, JobColumnsAsSpecified) {
  TestDatabase db;
  EXPECT_EQ(db.scalar("SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' "
                      "ORDER BY attnum) FROM pg_attribute "
                      "WHERE attrelid = 'jobd.job'::regclass AND attnum > 0 AND NOT attisdropped"),
            "id bigint, job_type text, status smallint, json_data jsonb, priority smallint, "
            "target text, requester text, attempt_count integer, max_retries integer, "
            "scheduled_start timestamp with time zone, lease_expires timestamp with time zone, "
            "lease_owner text, date_created timestamp with time zone, "
            "date_started timestamp with time zone, date_finished timestamp with time zone, "
            "log text, acquired boolean, behind boolean, waited boolean, linked boolean");
}

// jobd.enqueue takes SPEC §4.2's arguments by name, with defaults.
TEST(SchemaTest, EnqueueFunction) {
  TestDatabase db;
  std::string id = db.scalar(
      "SELECT jobd.enqueue('sleep', '{\"ms\": 5}', priority => 3, target => 't', "
      "max_retries => 2, requester => 'me')");
  EXPECT_EQ(db.scalar("SELECT concat_ws(',', job_type, json_data->>'ms', priority, target, "
                      "max_retries, requester, status) FROM jobd.job WHERE id = " +
                      id),
            "sleep,5,3,t,2,me,0");
  EXPECT_NE(db.scalar("SELECT jobd.enqueue('noop')"), "");
}

// The claim's index only holds WAITING jobs, so finished ones never enter it.
TEST(SchemaTest, ClaimIndexHoldsOnlyWaitingJobs) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.job (job_type, status) SELECT 'noop', 2 FROM generate_series(1, 500)");
  db.scalar("INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, 3)");
  db.scalar(
      "INSERT INTO jobd.job (job_type, scheduled_start) "
      "SELECT 'noop', now() + interval '1 year' FROM generate_series(1, 500)");
  auto conn = db.connect();
  pqxx::work txn(*conn);
  txn.exec("ANALYZE jobd.job");
  txn.exec("SET LOCAL enable_seqscan = off");
  pqxx::result plan = txn.exec(
      "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM jobd.job "
      "WHERE status = 0 AND scheduled_start IS NULL AND job_type = 'noop' AND NOT behind "
      "ORDER BY priority, id LIMIT 10");
  std::string json = plan[0][0].c_str();
  EXPECT_THAT(json, ::testing::HasSubstr("\"Index Name\": \"job_unscheduled_idx\""));
  EXPECT_THAT(json, ::testing::HasSubstr("\"Actual Rows\": 3"));
  EXPECT_EQ(
      txn.exec("SELECT count(*) FROM jobd.job WHERE status = 0 AND scheduled_start IS NULL")[0][0]
          .as<int>(),
      3);
}

// Two RUNNING jobs can never share a target, even when written directly.
TEST(SchemaTest, OneRunningJobPerTarget) {
  TestDatabase db;
  db.scalar("INSERT INTO jobd.job (job_type, status, target) VALUES ('a', 1, 'mp:1')");
  db.scalar("INSERT INTO jobd.job (job_type, status, target) VALUES ('b', 0, 'mp:1')");
  EXPECT_THROW(db.scalar("UPDATE jobd.job SET status = 1 WHERE job_type = 'b'"),
               pqxx::unique_violation);
}

}  // namespace
}  // namespace jobd::store
