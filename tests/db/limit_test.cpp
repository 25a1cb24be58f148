// Limits by key (schema 20, issue 21) in jobd.claim_limited: a key's
// running jobs are counted under its bucket's row lock, so two claims
// played out in the losing order never exceed its cap; parked jobs keep
// their attempts and start in priority order; an operator's cancel, retry,
// suspend and resume of a parked job, a changed key and a removed limit
// each leave nothing stranded; and the common claim never sees a parked
// job.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/job_repository.hpp"
#include "store/job_store.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

// jobd.claim_limited's SQL for want jobs of type w, keyed by key.
std::string claimSql(int want, const std::string& kind, const std::string& arg, int max_running,
                     int rate = 0, int burst = 0) {
  return "SELECT string_agg(target, ',' ORDER BY priority, id) FROM jobd.claim_limited('w', " +
         std::to_string(want) + ", '30s', 'test-owner', 1000000, '" + kind + "', '" + arg + "', " +
         std::to_string(max_running) + ", " + std::to_string(rate) + ", '1s', " +
         std::to_string(burst) + ", false, NULL)";
}

ClaimRequest limited(int want, const std::string& kind, const std::string& arg, int max_running,
                     int rate = 0, int burst = 0) {
  ClaimRequest request{"w", "w", want};
  request.key_limit = ClaimLimit{kind, arg, max_running, rate, std::chrono::seconds(1), burst};
  return request;
}

std::string targets(const ClaimResult& result) {
  std::string text;
  for (const runtime::ClaimedJob& job : result.jobs) {
    text += (text.empty() ? "" : ",") + job.target.value_or("-");
  }
  return text;
}

TEST(LimitTest, TwoClaimsOfOneKeyNeverExceedItsCap) {
  TestDatabase db;
  db.scalar("SELECT count(jobd.enqueue('w', '{\"host\": \"a\"}')) FROM generate_series(1, 5000)");
  db.scalar("INSERT INTO jobd.limit_definition VALUES ('w', 'data', 'host')");
  db.scalar("INSERT INTO jobd.limit_bucket (job_type, key, tokens) VALUES ('w', 'a', 0)");
  // The first claim takes 3 (and parks its budget of the others) and holds
  // the key's bucket until its COMMIT. A second claim meanwhile reads the
  // jobs the first did not lock, finds the bucket taken, and leaves the
  // key alone (claims never wait for each other's buckets); a claim after
  // the COMMIT counts the first one's jobs as RUNNING.
  auto first = db.connect();
  pqxx::work txn(*first);
  EXPECT_EQ(txn.exec1("SELECT count(*) FROM jobd.claim_limited('w', 10, '30s', 'a', 1000000, "
                      "'data', 'host', 3, 0, '1s', 0, false, NULL)")[0]
                .as<int>(),
            3);
  std::string parked_first = txn.exec1("SELECT count(*) FROM jobd.job_throttled")[0].c_str();
  auto second = db.connect();
  auto other = std::async(std::launch::async, [&] {
    pqxx::nontransaction t(*second);
    return t
        .exec1(
            "SELECT count(*) FROM jobd.claim_limited('w', 10, '30s', 'b', 1000000, "
            "'data', 'host', 3, 0, '1s', 0, false, NULL)")[0]
        .as<int>();
  });
  // The second claim has passed the buckets when it waits for the
  // definition row, whose backlog flag the first claim has set.
  for (int i = 0; i < 3000 && db.scalar("SELECT count(*) FROM pg_stat_activity WHERE "
                                        "datname = current_database() AND "
                                        "wait_event_type = 'Lock' AND query LIKE "
                                        "'%claim_limited(''w'', 10, ''30s'', ''b''%'") == "0";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  txn.commit();
  EXPECT_EQ(other.get(), 0);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), parked_first);
  EXPECT_EQ(db.scalar(claimSql(10, "data", "host", 3)), "");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 1"), "3");
  EXPECT_EQ(db.scalar("SELECT count(*) = (SELECT count(*) FROM jobd.job_throttled) FROM jobd.job "
                      "WHERE status = 0 AND attempt_count = 0 AND scheduled_start = 'infinity'"),
            "t");
}

TEST(LimitTest, ParkedJobsStartInPriorityOrderAsTheirKeyGetsRoom) {
  TestDatabase db;
  db.scalar(
      "SELECT jobd.enqueue('w', target => t, priority => p) FROM (VALUES ('a:1', 5), ('a:2', 0), "
      "('a:3', -5), ('b:1', 0)) AS v(t, p)");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  // One of a and one of b; a's other two are parked.
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "a:3,b:1");
  EXPECT_EQ(db.scalar("SELECT string_agg(key, ',' ORDER BY priority) FROM jobd.job_throttled"),
            "a,a");
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "");
  // The common claim never sees them, nor wakes for them.
  EXPECT_TRUE(repo.claim({"w", "w", 10}).jobs.empty());
  EXPECT_FALSE(repo.nextScheduledIn("w").has_value());
  EXPECT_FALSE(repo.nextScheduledIn("w", true).has_value());
  db.scalar("UPDATE jobd.job SET status = 2, lease_expires = NULL WHERE target = 'a:3'");
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "a:2");
  db.scalar("UPDATE jobd.job SET status = 2, lease_expires = NULL WHERE target = 'a:2'");
  ClaimResult last = repo.claim(limited(10, "target_prefix", ":", 1));
  EXPECT_EQ(targets(last), "a:1");
  // One attempt, its own start back (NULL), its wait counted from enqueue.
  EXPECT_EQ(last.jobs.at(0).attempt, 1);
  EXPECT_GE(last.jobs.at(0).queue_latency, 0.0);
  EXPECT_EQ(db.scalar("SELECT scheduled_start IS NULL FROM jobd.job WHERE target = 'a:1'"), "t");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "0");
  EXPECT_EQ(db.scalar("SELECT bool_or(parked) FROM jobd.limit_bucket"), "f");
}

TEST(LimitTest, AnOperatorsCommandsOnAParkedJobStrandNothing) {
  TestDatabase db;
  db.scalar(
      "SELECT jobd.enqueue('w', target => 'a:' || g, scheduled_start => CASE WHEN g = 2 THEN "
      "now() - interval '1 h' END) FROM generate_series(1, 4) AS g");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  JobStore store(*conn);
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "a:1");
  std::int64_t a2 = std::stoll(db.scalar("SELECT id FROM jobd.job WHERE target = 'a:2'"));
  std::int64_t a3 = std::stoll(db.scalar("SELECT id FROM jobd.job WHERE target = 'a:3'"));
  std::int64_t a4 = std::stoll(db.scalar("SELECT id FROM jobd.job WHERE target = 'a:4'"));
  ASSERT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "3");
  // Cancelled: FAILED with its own start back, out of the key's queue.
  store.apply(a2, OperatorAction::kCancel, "not wanted");
  EXPECT_EQ(db.scalar("SELECT status || ' ' || (scheduled_start < now()) FROM jobd.job WHERE "
                      "target = 'a:2'"),
            "3 true");
  // Suspended: out of the key's queue with its own start back, and
  // nothing left for a claim to lose; resumed, a candidate again.
  store.apply(a3, OperatorAction::kSuspend, "");
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "");
  EXPECT_EQ(db.scalar("SELECT status || ' ' || (scheduled_start IS NULL) FROM jobd.job WHERE "
                      "target = 'a:3'"),
            "4 true");
  store.apply(a3, OperatorAction::kResume, "");
  // Retried while parked: a candidate again, parked again by the next claim.
  store.apply(a4, OperatorAction::kRetry, "");
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "");
  EXPECT_EQ(db.scalar("SELECT string_agg(job_id::text, ',' ORDER BY job_id) FROM "
                      "jobd.job_throttled"),
            std::to_string(a3) + "," + std::to_string(a4));
  db.scalar("UPDATE jobd.job SET status = 2, lease_expires = NULL WHERE target = 'a:1'");
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "a:3");
  db.scalar("UPDATE jobd.job SET status = 2, lease_expires = NULL WHERE target = 'a:3'");
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "a:4");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "0");
}

// A parked job made to wait for a parent keeps waiting for it, and runs,
// once the parent is done, with its own start.
TEST(LimitTest, AParkedJobThatGetsAParentWaitsForIt) {
  TestDatabase db;
  db.scalar("SELECT jobd.enqueue('w', target => 'a:' || g) FROM generate_series(1, 2) AS g");
  std::string parent = db.scalar("SELECT jobd.enqueue('p')");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "a:1");
  std::string child = db.scalar("SELECT id FROM jobd.job WHERE target = 'a:2'");
  db.scalar("SELECT jobd.add_dependencies(" + child + ", ARRAY[" + parent + "::bigint])");
  db.scalar("UPDATE jobd.job SET status = 2, lease_expires = NULL WHERE target = 'a:1'");
  // Its key has room now, but it waits for its parent.
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "0");
  EXPECT_EQ(db.scalar("SELECT scheduled_start IS NULL FROM jobd.job_hold"), "t");
  db.scalar("UPDATE jobd.job SET status = 1, lease_expires = now() + interval '1 min' WHERE id = " +
            parent);
  db.scalar("UPDATE jobd.job SET status = 2, lease_expires = NULL WHERE id = " + parent);
  EXPECT_EQ(targets(repo.claim(limited(10, "target_prefix", ":", 1))), "a:2");
}

// A key's backlog is set aside in one claim, up to a budget, and the
// daemon is told to claim again at once while some is left: a job of
// another key behind 5,000 of one key's starts within three claims.
TEST(LimitTest, ABacklogIsSetAsideWithoutWaitingForThePoll) {
  TestDatabase db;
  db.scalar("SELECT count(jobd.enqueue('w', '{\"host\": \"a\"}')) FROM generate_series(1, 5000)");
  db.scalar("SELECT jobd.enqueue('w', '{\"host\": \"b\"}', target => 'b')");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  std::string started;
  int claims = 0;
  while (started.find('b') == std::string::npos && claims < 3) {
    ++claims;
    started += targets(repo.claim(limited(4, "data", "host", 1))) + ",";
    if (started.find('b') == std::string::npos) {
      // Some of the backlog is left: claim again now, not at the poll.
      std::optional<double> wake = repo.nextScheduledIn("w", true);
      ASSERT_TRUE(wake.has_value()) << "claim " << claims;
      EXPECT_LE(*wake, 0.001);
    }
  }
  EXPECT_NE(started.find('b'), std::string::npos) << started;
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 1"), "2");
  // Sorted: the rest of a's backlog is parked, and nothing calls for a claim.
  repo.claim(limited(4, "data", "host", 1));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "4999");
  EXPECT_FALSE(repo.nextScheduledIn("w", true).has_value());
}

TEST(LimitTest, AChangedKeyOrARemovedLimitGivesParkedJobsBack) {
  TestDatabase db;
  db.scalar(
      "SELECT count(jobd.enqueue('w', '{\"host\": \"a\"}', target => 't' || g)) "
      "FROM generate_series(1, 5) AS g");
  EXPECT_EQ(db.scalar(claimSql(10, "data", "host", 2)), "t1,t2");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "3");
  // By target now: every target is a key of its own, with room.
  EXPECT_EQ(db.scalar(claimSql(10, "target", "", 2)), "t3,t4,t5");
  EXPECT_EQ(db.scalar("SELECT key_kind FROM jobd.limit_definition"), "target");
  db.scalar("UPDATE jobd.job SET status = 0, lease_expires = NULL, attempt_count = 0");
  EXPECT_EQ(db.scalar(claimSql(1, "data", "host", 1)), "t1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "4");
  // No limit any more: back to the common claim, each with its own start.
  EXPECT_EQ(db.scalar("SELECT jobd.release_throttled('w')"), "4");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE scheduled_start IS NOT NULL"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.limit_bucket"), "0");
  EXPECT_EQ(db.scalar("SELECT jobd.release_throttled('w')"), "0");
}

TEST(LimitTest, ATokenBucketStartsNoMoreThanItsRate) {
  TestDatabase db;
  db.scalar("SELECT count(jobd.enqueue('w')) FROM generate_series(1, 100)");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  // 4 a second, 5 at once: the burst, then nothing until the next token,
  // which the daemon sleeps until. (A token every 250 ms: the second claim
  // comes sooner even on a loaded machine; at 10 a second it once did not.)
  EXPECT_EQ(repo.claim(limited(50, "type", "", 0, 4, 5)).jobs.size(), 5U);
  EXPECT_EQ(repo.claim(limited(50, "type", "", 0, 4, 5)).jobs.size(), 0U);
  std::optional<double> wake = repo.nextScheduledIn("w", true);
  ASSERT_TRUE(wake.has_value());
  EXPECT_GT(*wake, 0.0);
  EXPECT_LE(*wake, 0.25);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  std::size_t later = repo.claim(limited(50, "type", "", 0, 4, 5)).jobs.size();
  EXPECT_GE(later, 2U);
  EXPECT_LE(later, 5U);  // a slow machine may have slept longer: at most the burst
  // By key: each key has its own bucket; b's jobs are not held up by a's.
  db.scalar("UPDATE jobd.job SET status = 2 WHERE status = 0");
  db.scalar(
      "SELECT jobd.enqueue('w', target => k || ':' || g) FROM generate_series(1, 3) AS g, "
      "unnest(ARRAY['a', 'b']) AS k");
  // 2 a second (a token every 500 ms), 2 at once.
  EXPECT_EQ(db.scalar(claimSql(10, "target_prefix", ":", 0, 2, 2)), "a:1,a:2,b:1,b:2");
  EXPECT_EQ(db.scalar(claimSql(10, "target_prefix", ":", 0, 2, 2)), "");
  EXPECT_EQ(db.scalar("SELECT string_agg(key || ' ' || parked, ',' ORDER BY key) FROM "
                      "jobd.limit_state(10)"),
            "a 1,b 1");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(db.scalar(claimSql(10, "target_prefix", ":", 0, 2, 2)), "a:3,b:3");
}

}  // namespace
}  // namespace jobd::store
