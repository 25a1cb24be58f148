#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using testing::TestDatabase;
using testing::waitForValue;

// A section whose jobs record when their handler ran, in the job's own
// transaction: [started, ended] lies inside the time the job held its slot.
constexpr const char* kIntervalsTable = R"sql(
CREATE TABLE ran (job_id bigint, job_type text, started timestamptz, ended timestamptz);
CREATE FUNCTION record_run(data jsonb, id bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  PERFORM pg_sleep(COALESCE((data->>'sleep')::float8, 0.002));
  INSERT INTO ran SELECT j.id, j.job_type, t0, clock_timestamp() FROM jobd.job AS j
   WHERE j.id = record_run.id;
END $$;
)sql";

std::string section(const std::string& name, int concurrency) {
  return "[" + name + "]\nhandler: sql\nconcurrency: " + std::to_string(concurrency) +
         "\nstatement: SELECT record_run($1, $2)\n";
}

// Most handlers of one type that ever ran at the same instant.
int maxOverlap(const TestDatabase& db, const std::string& where) {
  std::string v = db.scalar(
      "SELECT COALESCE(max(c), 0) FROM (SELECT a.job_id, count(*) AS c FROM ran a JOIN ran b "
      "ON b.started <= a.started AND b.ended > a.started WHERE " +
      where + " GROUP BY a.job_id) x");
  return std::stoi(v);
}

// 3,000 jobs over sections of concurrency 1, 2 and 4: no section ever
// exceeds its limit, and every job completes.
TEST(ServeSchedulingTest, ConcurrencyLimitsHoldConcurrently) {
  TestDatabase db;
  db.scalar(kIntervalsTable);
  db.scalar(
      "INSERT INTO jobd.job (job_type, json_data) SELECT t, '{\"sleep\": 0.001}' "
      "FROM unnest(ARRAY['one', 'two', 'four']) t, generate_series(1, 1000)");
  Daemon daemon(
      db, "[jobd]\nworkers: 8\n" + section("one", 1) + section("two", 2) + section("four", 4));
  ASSERT_TRUE(daemon.waitReady());
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 2", "3000",
                         std::chrono::minutes(4)),
            "3000");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM ran"), "3000");
  EXPECT_EQ(maxOverlap(db, "a.job_type = 'one' AND b.job_type = 'one'"), 1);
  EXPECT_LE(maxOverlap(db, "a.job_type = 'two' AND b.job_type = 'two'"), 2);
  EXPECT_LE(maxOverlap(db, "a.job_type = 'four' AND b.job_type = 'four'"), 4);
  // The limits were reached, so the check above could have failed.
  EXPECT_EQ(maxOverlap(db, "a.job_type = 'four' AND b.job_type = 'four'"), 4);
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// Jobs that wait together start in priority order, then id order.
TEST(ServeSchedulingTest, PrioritiesAreHonoured) {
  TestDatabase db;
  db.scalar(kIntervalsTable);
  for (int priority : {5, -1, 3, 0, -1, 7, 0}) {
    db.scalar("SELECT jobd.enqueue('ordered', priority => " + std::to_string(priority) + ")");
  }
  Daemon daemon(db, section("ordered", 1));
  ASSERT_TRUE(daemon.waitReady());
  waitForValue(db, "SELECT count(*) FROM ran", "7");
  EXPECT_EQ(db.scalar("SELECT string_agg(j.priority::text, ',' ORDER BY r.started) FROM ran r "
                      "JOIN jobd.job j ON j.id = r.job_id"),
            "-1,-1,0,0,3,5,7");
  EXPECT_EQ(db.scalar("SELECT bool_and(ok) FROM (SELECT r.job_id > lag(r.job_id) OVER "
                      "(PARTITION BY j.priority ORDER BY r.started) IS NOT FALSE AS ok FROM ran r "
                      "JOIN jobd.job j ON j.id = r.job_id) x"),
            "t");
  daemon.stop();
}

// A job scheduled 2 s ahead does not start early, and starts within 500 ms
// of its time, long before the next poll (an hour away): the claim that
// found nothing ready set a wake-up for it. (About 50 ms on a quiet machine
// with the sanitized build; over 200 ms once in a loaded CI run.)
TEST(ServeSchedulingTest, ScheduledJobStartsOnTime) {
  TestDatabase db;
  db.scalar(kIntervalsTable);
  Daemon daemon(db, "[jobd]\npoll_interval: 1h\n" + section("later", 1));
  ASSERT_TRUE(daemon.waitReady());
  std::string id =
      db.scalar("SELECT jobd.enqueue('later', scheduled_start => now() + interval '2 seconds')");
  waitForValue(db, "SELECT count(*) FROM ran", "1", std::chrono::seconds(10));
  double late = std::stod(db.scalar(
      "SELECT extract(epoch FROM r.started - j.scheduled_start) FROM ran r JOIN jobd.job j ON "
      "j.id = r.job_id"));
  std::printf("scheduled job started %.1f ms after its time\n", late * 1000);
  EXPECT_GE(late, 0.0);
  EXPECT_LT(late, 0.5);
  daemon.stop();
}

// Jobs that share a target never overlap, whatever their type.
TEST(ServeSchedulingTest, OneTargetNeverOverlapsConcurrently) {
  TestDatabase db;
  db.scalar(kIntervalsTable);
  db.scalar(
      "INSERT INTO jobd.job (job_type, target, json_data) SELECT t, 'mp:1', "
      "'{\"sleep\": 0.01}' FROM unnest(ARRAY['a', 'b']) t, generate_series(1, 15)");
  db.scalar(
      "INSERT INTO jobd.job (job_type, json_data) SELECT 'a', '{\"sleep\": 0.01}' "
      "FROM generate_series(1, 10)");
  Daemon daemon(db, section("a", 4) + section("b", 4));
  ASSERT_TRUE(daemon.waitReady());
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM ran", "40"), "40");
  EXPECT_EQ(maxOverlap(db,
                       "(SELECT target FROM jobd.job WHERE id = a.job_id) = 'mp:1' AND "
                       "(SELECT target FROM jobd.job WHERE id = b.job_id) = 'mp:1'"),
            1);
  daemon.stop();
}

// An idle daemon starts a freshly committed job quickly (commit -> handler
// start, printed); with the trigger gone, the poll still starts jobs within
// poll_interval + 1 s.
TEST(ServeSchedulingTest, LatencyOfAnIdleDaemon) {
  TestDatabase db;
  db.scalar(kIntervalsTable);
  db.scalar("CREATE TABLE committed (job_id bigint, at timestamptz)");
  Daemon daemon(db, "[jobd]\npoll_interval: 1s\n" + section("quick", 4));
  ASSERT_TRUE(daemon.waitReady());
  auto conn = db.connect();
  std::vector<double> latencies;
  for (int i = 0; i < 100; ++i) {
    std::string id;
    {
      pqxx::work txn(*conn);
      id = txn.exec("SELECT jobd.enqueue('quick', '{\"sleep\": 0}')")[0][0].c_str();
      txn.commit();
    }
    pqxx::nontransaction(*conn).exec("INSERT INTO committed VALUES (" + id +
                                     ", clock_timestamp())");
    waitForValue(db, "SELECT count(*) FROM ran WHERE job_id = " + id, "1",
                 std::chrono::seconds(10));
  }
  pqxx::nontransaction q(*conn);
  for (const pqxx::row& row :
       q.exec("SELECT extract(epoch FROM r.started - c.at) FROM ran r JOIN committed c USING "
              "(job_id)")) {
    latencies.push_back(row[0].as<double>() * 1000);
  }
  ASSERT_EQ(latencies.size(), 100u);
  std::sort(latencies.begin(), latencies.end());
  std::printf("commit -> start over 100 jobs: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              latencies[49], latencies[98], latencies[99]);
  EXPECT_LT(latencies[98], 500.0);  // loose: the benchmark holds the real target

  db.scalar("DROP TRIGGER job_notify_insert ON jobd.job");
  std::string id = db.scalar("SELECT jobd.enqueue('quick', '{\"sleep\": 0}')");
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM ran WHERE job_id = " + id, "1",
                         std::chrono::seconds(10)),
            "1");
  EXPECT_EQ(db.scalar("SELECT r.started - j.date_created < interval '2 seconds' FROM ran r JOIN "
                      "jobd.job j ON j.id = r.job_id WHERE j.id = " +
                      id),
            "t");
  daemon.stop();
}

// Two daemons share 10,000 noop jobs: every job COMPLETED, each once.
TEST(ServeSchedulingTest, TwoDaemonsConcurrently) {
  TestDatabase db;
  db.scalar("INSERT INTO jobd.job (job_type) SELECT 'noop' FROM generate_series(1, 10000)");
  const std::string config = "[jobd]\nworkers: 16\n[noop]\nconcurrency: 16\n";
  Daemon first(db, config);
  Daemon second(db, config);
  ASSERT_TRUE(first.waitReady());
  ASSERT_TRUE(second.waitReady());
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 2", "10000",
                         std::chrono::minutes(4)),
            "10000");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE attempt_count <> 1"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt"), "0");
  EXPECT_EQ(db.scalar("SELECT count(DISTINCT lease_owner) FROM jobd.job"), "2");
  EXPECT_EQ(first.stop().exit_code, 0);
  EXPECT_EQ(second.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
