// The trends' roll-up (schema 23, issue 22): jobd.roll_up_minutes counts
// each whole minute's finished jobs once, one daemon at a time, from an
// hour back for a type it has not seen; the cleaner prunes a type's minutes
// with its keep_finished.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "store/retention.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

// n jobs of `type` that finished `ago` ago, in `status`.
void finished(const TestDatabase& db, const std::string& type, int n, const std::string& ago,
              int status = 2) {
  db.scalar(
      "INSERT INTO jobd.job (job_type, status, attempt_count, date_created, date_started, "
      "date_finished) SELECT '" +
      type + "', " + std::to_string(status) + ", 1, now() - interval '" + ago +
      "' - interval '3 s', now() - interval '" + ago + "' - interval '1 s', now() - interval '" +
      ago + "' FROM generate_series(1, " + std::to_string(n) + ") RETURNING 1");
}

TEST(TrendsTest, EachWholeMinuteIsRolledUpOnceFromAnHourBack) {
  TestDatabase db;
  finished(db, "report", 4, "3 hours");  // before the first roll-up's hour
  finished(db, "report", 5, "30 minutes");
  finished(db, "report", 2, "30 minutes", 3);
  db.scalar("SELECT jobd.enqueue('report')");
  // Another session rolling up: this one returns at once, with nothing.
  auto holder = db.connect();
  pqxx::work held(*holder);
  held.exec("SELECT pg_advisory_xact_lock(hashtextextended('jobd.roll_up_minutes', 0))");
  EXPECT_EQ(db.scalar("SELECT jobd.roll_up_minutes() IS NULL"), "t");
  held.abort();

  // Ten minutes a call: six calls (and a seventh at a minute's turn) to
  // catch up with the hour; one minute had jobs.
  int rolled = 0;
  for (int i = 0; i < 7; ++i) {
    rolled += std::stoi(db.scalar("SELECT jobd.roll_up_minutes()"));
  }
  EXPECT_EQ(rolled, 1);
  EXPECT_EQ(db.scalar("SELECT string_agg(completed || '/' || failed || ' ' || "
                      "round(latency_p50::numeric, 1), ',') FROM jobd.job_minute "
                      "WHERE job_type = 'report' AND completed + failed > 0"),
            "5/2 2.0");
  EXPECT_EQ(db.scalar("SELECT through - since BETWEEN interval '59 minutes' AND interval '61 "
                      "minutes' AND through BETWEEN date_trunc('minute', now() - interval '5 s') - "
                      "interval '1 minute' AND date_trunc('minute', now() - interval '5 s') FROM "
                      "jobd.job_minute_rolled"),
            "t");
  // The ready sample of this minute: the one WAITING job.
  EXPECT_EQ(db.scalar("SELECT max(ready) FROM jobd.job_minute WHERE job_type = 'report' AND "
                      "minute >= date_trunc('minute', now()) - interval '1 minute'"),
            "1");
  // Rolled up again: the minutes already done are not counted twice, and
  // older jobs are never read.
  finished(db, "report", 3, "20 minutes");
  EXPECT_EQ(db.scalar("SELECT jobd.roll_up_minutes()"), "0");
  EXPECT_EQ(db.scalar("SELECT sum(completed) FROM jobd.job_minute WHERE job_type = 'report'"), "5");
}

// A type with nothing waiting and nothing done in the last hour adds no
// row: only a type that was busy gets its ready jobs sampled at 0.
TEST(TrendsTest, AQuietTypeAddsNoRows) {
  TestDatabase db;
  finished(db, "old", 3, "3 hours");
  for (int i = 0; i < 7; ++i) {
    db.scalar("SELECT jobd.roll_up_minutes()");
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_minute WHERE job_type = 'old'"), "0");
}

TEST(TrendsTest, TheCleanerPrunesATypesMinutesWithItsKeepFinished) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.job_minute_rolled VALUES ('report', now() - interval '5 days', now()) "
      "RETURNING 1");
  db.scalar(
      "INSERT INTO jobd.job_minute (job_type, minute, completed) VALUES "
      "('report', date_trunc('minute', now() - interval '3 days'), 1), "
      "('report', date_trunc('minute', now() - interval '1 hour'), 2), "
      "('mail', date_trunc('minute', now() - interval '3 days'), 3) RETURNING 1");
  auto conn = db.connect();
  pqxx::work txn(*conn);
  ASSERT_TRUE(pruneFinishedJobs(txn, "report", std::chrono::hours(48), 100));
  txn.commit();
  EXPECT_EQ(db.scalar("SELECT string_agg(job_type || ' ' || completed, ',' ORDER BY completed) "
                      "FROM jobd.job_minute"),
            "report 2,mail 3");
  // The minutes pruned are no longer rolled up: no data, not no jobs.
  EXPECT_EQ(db.scalar("SELECT since BETWEEN date_trunc('minute', now() - interval '48 hours') "
                      "AND date_trunc('minute', now() - interval '48 hours') + interval '1 "
                      "minute' FROM jobd.job_minute_rolled"),
            "t");
}

}  // namespace
}  // namespace jobd::store
