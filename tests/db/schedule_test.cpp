// Schedules' SQL (schema 15): jobd.fire_schedule makes one job per tick
// and applies the overlap policy; the triggers restart a redefined or
// resumed schedule and wake the daemons for a change, not for a pass; a
// pass locks only the schedules no other pass holds.
#include <gtest/gtest.h>

#include <string>

#include "store/schedule_store.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

std::string fire(TestDatabase& db, const std::string& name, const std::string& at) {
  return db.scalar(
      "SELECT coalesce(job_id::text, '-') || ' ' || outcome FROM "
      "jobd.fire_schedule('" +
      name + "', '" + at + "')");
}

TEST(ScheduleSqlTest, OneJobPerTickWhoeverAsks) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.schedule (name, job_type, spec, json_data, priority, max_retries) "
      "VALUES ('s', 'noop', 'every 1m', '{\"a\": 1}', 3, 2) RETURNING 1");
  std::string made = fire(db, "s", "2026-12-06 10:00:00Z");
  ASSERT_EQ(made.substr(made.find(' ')), " made");
  const std::string job = made.substr(0, made.find(' '));
  EXPECT_EQ(fire(db, "s", "2026-12-06 10:00:00Z"), "- duplicate");
  EXPECT_EQ(db.scalar("SELECT concat_ws(' ', job_type, json_data::text, priority, max_retries, "
                      "requester, target IS NULL) FROM jobd.job WHERE id = " +
                      job),
            "noop {\"a\": 1} 3 2 schedule s tick 2026-12-06T10:00:00Z t");
  EXPECT_EQ(db.scalar("SELECT last_job || ' ' || (last_fire = '2026-12-06 10:00:00Z') FROM "
                      "jobd.schedule"),
            job + " true");
  // A manual tick (run-now) at the same instant has a key of its own.
  EXPECT_EQ(db.scalar("SELECT outcome FROM jobd.fire_schedule('s', '2026-12-06 10:00:00Z', "
                      "'operator', true)"),
            "made");
  // Overlap allow (the default): the next tick makes a job while the last
  // waits.
  EXPECT_NE(fire(db, "s", "2026-12-06 10:01:00Z"), "- skipped");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job"), "3");
  // Ticks more than a day older than the newest are dropped.
  fire(db, "s", "2026-12-07 10:02:00Z");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.schedule_tick"), "1");
  EXPECT_THROW(db.scalar("SELECT * FROM jobd.fire_schedule('nope', now())"), pqxx::sql_error);
}

TEST(ScheduleSqlTest, OverlapSkipWaitsForTheLastJobAndQueueRunsBehindIt) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.schedule (name, job_type, spec, overlap) VALUES "
      "('skip', 'noop', 'every 1m', 'skip'), ('queue', 'noop', 'every 1m', 'queue') "
      "RETURNING 1");
  std::string first = fire(db, "skip", "2026-12-06 10:00:00Z");
  const std::string job = first.substr(0, first.find(' '));
  EXPECT_EQ(fire(db, "skip", "2026-12-06 10:01:00Z"), "- skipped");
  db.scalar(
      "UPDATE jobd.job SET status = 1, lease_owner = 'x', lease_expires = now() + "
      "interval '1 minute' WHERE id = " +
      job + " RETURNING 1");
  EXPECT_EQ(fire(db, "skip", "2026-12-06 10:02:00Z"), "- skipped");
  db.scalar(
      "UPDATE jobd.job SET status = 2, date_finished = now(), lease_owner = NULL, "
      "lease_expires = NULL WHERE id = " +
      job + " RETURNING 1");
  EXPECT_NE(fire(db, "skip", "2026-12-06 10:03:00Z"), "- skipped");
  EXPECT_EQ(db.scalar("SELECT skipped FROM jobd.schedule WHERE name = 'skip'"), "2");
  // A skipped tick is a tick: asking again is a duplicate.
  EXPECT_EQ(fire(db, "skip", "2026-12-06 10:01:00Z"), "- duplicate");

  fire(db, "queue", "2026-12-06 10:00:00Z");
  fire(db, "queue", "2026-12-06 10:01:00Z");
  EXPECT_EQ(db.scalar("SELECT string_agg(target || ':' || behind, ' ' ORDER BY id) FROM jobd.job "
                      "WHERE requester LIKE 'schedule queue tick %'"),
            "schedule:queue:false schedule:queue:true");
}

TEST(ScheduleSqlTest, AResumedOrRedefinedScheduleStartsAfreshAndOnlyChangesNotify) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.schedule (name, job_type, spec, paused, fired_through, next_fire, "
      "problem) VALUES ('s', 'noop', 'every 1m', true, now() - interval '1 day', "
      "'infinity', 'bad') RETURNING 1");
  db.scalar("UPDATE jobd.schedule SET paused = false RETURNING 1");
  EXPECT_EQ(db.scalar("SELECT concat_ws(' ', fired_through > now() - interval '1 minute', "
                      "next_fire IS NULL, problem IS NULL) FROM jobd.schedule"),
            "t t t");

  auto listener = db.connect();
  int heard = 0;
  struct Receiver : pqxx::notification_receiver {
    Receiver(pqxx::connection_base& c, int& n) : pqxx::notification_receiver(c, "jobd"), n(n) {}
    void operator()(const std::string& payload, int) override { n += payload == "jobd.schedule"; }
    int& n;
  } receiver(*listener, heard);
  auto conn = db.connect();
  {
    // A daemon's pass writes nothing the others need to hear.
    pqxx::work txn(*conn);
    recordPass(txn, "s", 1800000000, 1800000060, 0);
    txn.commit();
  }
  // Heard in order: a sentinel sent after the pass's commit arrives after
  // anything the pass sent.
  db.scalar("SELECT pg_notify('jobd', 'sentinel')");
  struct Sentinel : pqxx::notification_receiver {
    Sentinel(pqxx::connection_base& c, bool& seen)
        : pqxx::notification_receiver(c, "jobd"), seen(seen) {}
    void operator()(const std::string& payload, int) override { seen |= payload == "sentinel"; }
    bool& seen;
  };
  bool sentinel = false;
  {
    Sentinel watcher(*listener, sentinel);
    for (int i = 0; i < 50 && !sentinel; ++i) {
      listener->await_notification(0, 100000);
    }
  }
  ASSERT_TRUE(sentinel);
  EXPECT_EQ(heard, 0);
  db.scalar("UPDATE jobd.schedule SET spec = 'every 2m' RETURNING 1");
  listener->await_notification(5, 0);
  EXPECT_EQ(heard, 1);
  EXPECT_EQ(db.scalar("SELECT next_fire IS NULL FROM jobd.schedule"), "t");
}

TEST(ScheduleSqlTest, APassLocksOnlyWhatNoOtherPassHolds) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.schedule (name, job_type, spec) VALUES "
      "('a', 'noop', 'every 1s'), ('b', 'noop', 'every 1s'), "
      "('later', 'noop', 'every 1s'), ('stopped', 'noop', 'every 1s') RETURNING 1");
  db.scalar(
      "UPDATE jobd.schedule SET next_fire = now() + interval '1 hour' WHERE name = "
      "'later' RETURNING 1");
  db.scalar("UPDATE jobd.schedule SET paused = true WHERE name = 'stopped' RETURNING 1");
  auto one = db.connect();
  auto two = db.connect();
  pqxx::work first(*one);
  std::int64_t now = 0;
  std::vector<DueSchedule> held = lockDueSchedules(first, 1, {}, now);
  ASSERT_EQ(held.size(), 1U);
  EXPECT_GT(now, 1700000000);
  pqxx::work second(*two);
  std::vector<DueSchedule> rest = lockDueSchedules(second, 10, {}, now);
  ASSERT_EQ(rest.size(), 1U);
  EXPECT_NE(rest[0].name, held[0].name);
  // Due now (held, or not computed yet): the pass looks again soon.
  EXPECT_LE(secondsToNextTick(second, {}).value(), 0.0);
  // A schedule passed over here (its time zone unknown to this host) is
  // neither locked nor waited for.
  second.abort();
  pqxx::work third(*two);
  EXPECT_TRUE(lockDueSchedules(third, 10, {"a", "b"}, now).empty());
}

}  // namespace
}  // namespace jobd::store
