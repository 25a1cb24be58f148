// Dependencies and batches (schema 19, issue 21) run by real daemons: a
// diamond-shaped graph runs in order, a failed parent fails, cancels or
// frees its children as their edges say, and a batch finished by four
// daemons, one of them killed with SIGKILL on the way, enqueues its
// callback exactly once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using testing::TestDatabase;
using testing::waitForValue;

constexpr const char* kStepConfig = R"(
[jobd]
poll_interval: 1s
[step]
handler: sql
concurrency: 4
statement: SELECT step($1, $2)
)";

// Each run's start and end by the database clock, a sleep in between, and
// json_data.fail to end in a user error.
constexpr const char* kStep = R"sql(
CREATE TABLE step_log (name text, started timestamptz, ended timestamptz);
CREATE FUNCTION step(data jsonb, id bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  began timestamptz := clock_timestamp();
BEGIN
  PERFORM pg_sleep(0.2);
  INSERT INTO step_log VALUES (data->>'name', began, clock_timestamp());
  IF data ? 'fail' THEN
    RAISE EXCEPTION 'step % fails', data->>'name' USING ERRCODE = 'JU000';
  END IF;
END
$$;
)sql";

TEST(DependencyRunTest, ADiamondRunsInOrder) {
  TestDatabase db;
  db.scalar(kStep);
  Daemon daemon(db, kStepConfig);
  ASSERT_TRUE(daemon.waitReady());
  // The whole graph in one transaction (one statement).
  db.scalar(R"sql(
    WITH a AS (SELECT jobd.enqueue('step', '{"name": "a"}') AS id),
         b AS (SELECT jobd.add_dependencies(jobd.enqueue('step', '{"name": "b"}'),
                                            ARRAY[a.id]) AS id FROM a),
         c AS (SELECT jobd.add_dependencies(jobd.enqueue('step', '{"name": "c"}'),
                                            ARRAY[a.id]) AS id FROM a),
         d AS (SELECT jobd.add_dependencies(jobd.enqueue('step', '{"name": "d"}'),
                                            ARRAY[b.id, c.id]) AS id FROM b, c)
    SELECT id FROM d)sql");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 2", "4"), "4")
      << daemon.log();
  auto after = [&db](const std::string& later, const std::string& earlier) {
    return db.scalar("SELECT (SELECT started FROM step_log WHERE name = '" + later +
                     "') >= (SELECT ended FROM step_log WHERE name = '" + earlier + "')");
  };
  EXPECT_EQ(after("b", "a"), "t");
  EXPECT_EQ(after("c", "a"), "t");
  EXPECT_EQ(after("d", "b"), "t");
  EXPECT_EQ(after("d", "c"), "t");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM step_log"), "4");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

TEST(DependencyRunTest, AFailedParentFailsCancelsOrFreesItsChildren) {
  TestDatabase db;
  db.scalar(kStep);
  Daemon daemon(db, kStepConfig);
  ASSERT_TRUE(daemon.waitReady());
  std::string parent = db.scalar(R"sql(
    WITH p AS (SELECT jobd.enqueue('step', '{"name": "parent", "fail": true}') AS id),
         f AS (SELECT jobd.add_dependencies(jobd.enqueue('step', '{"name": "fail"}'),
                                            ARRAY[p.id], 'fail') FROM p),
         c AS (SELECT jobd.add_dependencies(jobd.enqueue('step', '{"name": "cancel"}'),
                                            ARRAY[p.id], 'cancel') FROM p),
         r AS (SELECT jobd.add_dependencies(jobd.enqueue('step', '{"name": "run"}'),
                                            ARRAY[p.id], 'run') FROM p)
    SELECT p.id FROM p, f, c, r)sql");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status IN (2, 3)", "4"), "4")
      << daemon.log();
  EXPECT_EQ(db.scalar("SELECT string_agg(json_data->>'name' || ' ' || status || ' ' || "
                      "COALESCE(log, '-'), '; ' ORDER BY id) FROM jobd.job"),
            "parent 3 step parent fails; fail 3 ParentFailed: parent job " + parent +
                " failed; cancel 3 Cancelled: parent job " + parent + " failed; run 2 -");
  // Only the free child ran (the parent's user error rolled its own row back).
  EXPECT_EQ(db.scalar("SELECT string_agg(name, ',' ORDER BY started) FROM step_log"), "run");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

constexpr const char* kBatchConfig = R"(
[jobd]
poll_interval: 1s
rescue_interval: 1s
[m]
handler: noop
concurrency: 8
lease_duration: 2s
[done]
handler: sql
statement: INSERT INTO callbacks VALUES ($2, $1)
)";

// 10,000 jobs in a batch, four daemons, one killed with SIGKILL while it
// runs some of them (the rescue ends them elsewhere), the batch closed
// while its jobs run: one callback, with counts that add up.
TEST(BatchRunTest, FourDaemonsAndAKillFireTheCallbackOnce) {
  TestDatabase db;
  db.scalar("CREATE TABLE callbacks (job_id bigint, data jsonb)");
  std::string batch = db.scalar("SELECT jobd.create_batch('done', '{\"report\": \"r\"}')");
  db.scalar("SELECT count(jobd.add_to_batch(" + batch +
            ", jobd.enqueue('m', max_retries => 3))) FROM generate_series(1, 10000)");
  std::vector<std::unique_ptr<Daemon>> daemons;
  daemons.reserve(4);
  for (int i = 0; i < 4; ++i) {
    daemons.push_back(std::make_unique<Daemon>(db, kBatchConfig));
  }
  for (auto& d : daemons) {
    ASSERT_TRUE(d->waitReady());
  }
  ASSERT_EQ(waitForValue(db, "SELECT count(*) >= 2000 FROM jobd.job WHERE status = 2", "true"),
            "true");
  daemons[0]->process().signal(SIGKILL);
  db.scalar("SELECT jobd.close_batch(" + batch + ")");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM callbacks", "1", std::chrono::seconds(120)), "1")
      << daemons[1]->log();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'm' AND status NOT IN (2, "
                      "3)"),
            "0");
  std::this_thread::sleep_for(std::chrono::seconds(2));  // nothing more comes
  EXPECT_EQ(db.scalar("SELECT count(*) FROM callbacks"), "1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'done'"), "1");
  EXPECT_EQ(
      db.scalar("SELECT data->'batch'->>'total' || ' ' || ((data->'batch'->>'completed')::int "
                "+ (data->'batch'->>'failed')::int) || ' ' || (data->>'report') "
                "FROM callbacks"),
      "10000 10000 r");
  EXPECT_EQ(db.scalar("SELECT callback_job = (SELECT job_id FROM callbacks) FROM jobd.batch"), "t");
  std::printf(
      "%s of the killed daemon's jobs were rescued\n",
      db.scalar("SELECT count(*) FROM jobd.job_attempt WHERE outcome = 'lease_expired'").c_str());
  for (std::size_t i = 1; i < daemons.size(); ++i) {
    EXPECT_EQ(daemons[i]->stop().exit_code, 0);
  }
}

}  // namespace
}  // namespace jobd
