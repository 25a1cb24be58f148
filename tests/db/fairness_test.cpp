// Fairness and priority ageing (schema 21, issue 21 item 2) in
// jobd.claim_limited: one key's long backlog is set aside and the other
// keys' jobs start within the first claims; the keys with parked jobs take
// the slots one job a round; a fair claim still fills its slots when only
// one key has work; and a job that has waited past its section's ageing
// starts before jobs of higher priority, whether it is unscheduled, due
// after a delay, or in a type claimed without a key.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "store/job_repository.hpp"
#include "store/job_store.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

ClaimRequest fair(int want, const std::string& kind = "data", const std::string& arg = "who") {
  ClaimRequest request{"w", "w", want};
  request.key_limit = ClaimLimit{kind, arg, 0, 0, std::chrono::seconds(1), 0, true};
  return request;
}

ClaimRequest ageing(int want, Duration age) {
  ClaimRequest request{"w", "w", want};
  request.key_limit = ClaimLimit{"type", "", 0, 0, std::chrono::seconds(1), 0, false, age};
  return request;
}

// How many jobs of each key (json_data's "who") a claim started.
std::map<std::string, int> byKey(TestDatabase& db, const ClaimResult& result) {
  std::map<std::string, int> counts;
  for (const runtime::ClaimedJob& job : result.jobs) {
    ++counts[db.scalar("SELECT json_data ->> 'who' FROM jobd.job WHERE id = " +
                       std::to_string(job.id))];
  }
  return counts;
}

TEST(FairnessTest, NineKeysStartWithinTwentyClaimsBehindAHundredThousandJobsOfOne) {
  TestDatabase db;
  // The worst order: the nine single jobs were enqueued after the backlog.
  db.scalar(
      "SELECT count(jobd.enqueue('w', '{\"who\": \"hot\"}')) FROM generate_series(1, 100000)");
  db.scalar(
      "SELECT count(jobd.enqueue('w', json_build_object('who', 'k' || i)::jsonb)) "
      "FROM generate_series(1, 9) AS i");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  std::set<std::string> started;
  int claims = 0;
  auto began = std::chrono::steady_clock::now();
  while (started.size() < 10 && claims < 100) {
    ClaimResult result = repo.claim(fair(32));
    ++claims;
    // Every claim fills its slots: the backlog's own jobs run meanwhile.
    EXPECT_EQ(result.jobs.size(), 32U) << "claim " << claims;
    for (const auto& [key, n] : byKey(db, result)) {
      started.insert(key);
    }
  }
  EXPECT_EQ(started.size(), 10U);
  EXPECT_LE(claims, 20);
  RecordProperty("claims", claims);
  RecordProperty("milliseconds",
                 static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - began)
                                      .count()));
  // Nothing spent an attempt but the jobs that started; the rest wait,
  // parked or ready.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE attempt_count > 0"),
            std::to_string(32 * claims));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND attempt_count = 0"),
            std::to_string(100009 - 32 * claims));
  // Once the backlog is set aside, a new key's job starts in the next claim
  // (or the one after, while the backlog is still being parked).
  db.scalar("SELECT jobd.enqueue('w', '{\"who\": \"late\"}')");
  std::map<std::string, int> next = byKey(db, repo.claim(fair(32)));
  if (next["late"] == 0) {
    next = byKey(db, repo.claim(fair(32)));
  }
  EXPECT_EQ(next["late"], 1);
}

TEST(FairnessTest, KeysWithParkedJobsTakeTheSlotsOneJobARound) {
  TestDatabase db;
  db.scalar(
      "SELECT jobd.enqueue('w', json_build_object('who', w)::jsonb) "
      "FROM (SELECT 'a' FROM generate_series(1, 20) UNION ALL SELECT 'b' FROM "
      "generate_series(1, 20) UNION ALL SELECT 'c') AS v(w)");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  // Claim order would give a's first six; a fair claim gives each key one
  // from its window, then a and b a job a round.
  std::map<std::string, int> first = byKey(db, repo.claim(fair(7)));
  EXPECT_EQ(first["c"], 1);
  EXPECT_EQ(first["a"], 3);
  EXPECT_EQ(first["b"], 3);
  // Then a and b in turn, whichever was served less recently first.
  std::map<std::string, int> second = byKey(db, repo.claim(fair(5)));
  EXPECT_GE(second["a"], 2);
  EXPECT_GE(second["b"], 2);
  EXPECT_EQ(second["a"] + second["b"], 5);
  std::map<std::string, int> third = byKey(db, repo.claim(fair(5)));
  EXPECT_EQ(second["a"] + third["a"], 5);
  EXPECT_EQ(second["b"] + third["b"], 5);
}

TEST(FairnessTest, OneKeyAloneStillFillsEverySlot) {
  TestDatabase db;
  db.scalar("SELECT count(jobd.enqueue('w', '{\"who\": \"a\"}')) FROM generate_series(1, 100)");
  db.scalar("SELECT count(jobd.enqueue('w', '{}')) FROM generate_series(1, 3)");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  int total = 0;
  for (int i = 0; i < 5; ++i) {
    std::size_t got = repo.claim(fair(16)).jobs.size();
    EXPECT_EQ(got, 16U) << "claim " << i;
    total += static_cast<int>(got);
  }
  // Jobs without the field are not keyed, and start in claim order.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 1 AND json_data = '{}'"), "3");
  EXPECT_EQ(repo.claim(fair(64)).jobs.size(), static_cast<std::size_t>(103 - total));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 1 AND attempt_count = 1"),
            "103");
}

// Fair with a cap of one running job per key: a key at its cap takes its
// turn without starting anything, so the other keys' parked jobs start;
// and a key whose queue an operator emptied is noticed and stops taking
// a turn.
TEST(FairnessTest, KeysAtTheirCapAndEmptiedQueuesDoNotHoldUpOthers) {
  TestDatabase db;
  db.scalar(
      "SELECT jobd.enqueue('w', json_build_object('who', w)::jsonb) "
      "FROM (SELECT 'a' FROM generate_series(1, 5) UNION ALL SELECT 'b' FROM "
      "generate_series(1, 5)) AS v(w)");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  JobStore store(*conn);
  ClaimRequest capped = fair(4);
  capped.key_limit->max_running = 1;
  EXPECT_EQ(byKey(db, repo.claim(capped)), (std::map<std::string, int>{{"a", 1}, {"b", 1}}));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "8");
  // Both at their cap: nothing starts, and nothing is lost.
  EXPECT_TRUE(repo.claim(capped).jobs.empty());
  // a's running job ends: a's next starts, b still waits.
  db.scalar(
      "UPDATE jobd.job SET status = 2, lease_expires = NULL WHERE status = 1 "
      "AND json_data ->> 'who' = 'a'");
  EXPECT_EQ(byKey(db, repo.claim(capped)), (std::map<std::string, int>{{"a", 1}}));
  // b's parked jobs are cancelled: its bucket stops saying it has any.
  std::vector<std::int64_t> parked_b;
  {
    pqxx::nontransaction q(*conn);
    for (const pqxx::row& row :
         q.exec("SELECT t.job_id FROM jobd.job_throttled AS t JOIN jobd.job AS j ON j.id = "
                "t.job_id WHERE j.json_data ->> 'who' = 'b'")) {
      parked_b.push_back(row[0].as<std::int64_t>());
    }
  }
  ASSERT_EQ(parked_b.size(), 4U);
  for (std::int64_t id : parked_b) {
    store.apply(id, OperatorAction::kCancel, "not wanted");
  }
  repo.claim(capped);
  EXPECT_EQ(db.scalar("SELECT parked FROM jobd.limit_bucket WHERE key = 'b'"), "f");
  EXPECT_EQ(db.scalar("SELECT parked FROM jobd.limit_bucket WHERE key = 'a'"), "t");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE attempt_count > 1"), "0");
}

TEST(FairnessTest, AJobThatWaitedPastTheAgeingStartsBeforeHigherPriorities) {
  TestDatabase db;
  db.scalar(
      "SELECT count(jobd.enqueue('w', target => 'hi' || i, priority => 0)) "
      "FROM generate_series(1, 50) AS i");
  db.scalar("SELECT jobd.enqueue('w', target => 'old', priority => 10)");
  db.scalar("SELECT jobd.enqueue('w', target => 'young', priority => 10)");
  db.scalar(
      "SELECT jobd.enqueue('w', target => 'late', priority => 20, "
      "scheduled_start => now() - interval '3 hours')");
  db.scalar("UPDATE jobd.job SET date_created = now() - interval '2 hours' WHERE target = 'old'");
  // Two aged jobs of one target (a retried one due, the next one queued):
  // one starts, as the common claim takes them.
  db.scalar(
      "SELECT jobd.enqueue('w', target => 'twin', priority => 30, "
      "scheduled_start => now() - interval '4 hours')");
  db.scalar(
      "INSERT INTO jobd.job (job_type, target, priority, date_created) "
      "VALUES ('w', 'twin', 30, now() - interval '5 hours')");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  auto targets = [](const ClaimResult& result) {
    std::string text;
    for (const runtime::ClaimedJob& job : result.jobs) {
      text += (text.empty() ? "" : ",") + job.target.value_or("-");
    }
    return text;
  };
  // Without ageing the two priority-0 claims would take none of them.
  ClaimResult first = repo.claim(ageing(4, std::chrono::hours(1)));
  EXPECT_EQ(targets(first), "old,late,twin,hi1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE target = 'twin' AND status = 1"), "1");
  ClaimResult second = repo.claim(ageing(4, std::chrono::hours(1)));
  EXPECT_EQ(targets(second), "hi2,hi3,hi4,hi5");
  // The common claim, and a longer ageing, keep priority order.
  db.scalar("UPDATE jobd.job SET date_created = now() - interval '2 hours' WHERE target = 'young'");
  EXPECT_EQ(targets(repo.claim(ageing(2, std::chrono::hours(3)))), "hi6,hi7");
  EXPECT_EQ(targets(repo.claim({"w", "w", 2})), "hi8,hi9");
  EXPECT_EQ(targets(repo.claim(ageing(2, std::chrono::hours(1)))), "young,hi10");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_throttled"), "0");
}

TEST(FairnessTest, AgeingAndFairnessTogether) {
  TestDatabase db;
  db.scalar(
      "SELECT count(jobd.enqueue('w', '{\"who\": \"a\"}', priority => 0)) "
      "FROM generate_series(1, 40)");
  db.scalar("SELECT jobd.enqueue('w', '{\"who\": \"b\"}', priority => 5)");
  db.scalar(
      "UPDATE jobd.job SET date_created = now() - interval '1 hour' "
      "WHERE json_data ->> 'who' = 'b'");
  auto conn = db.connect();
  JobRepository repo(*conn, "test-owner");
  ClaimRequest request = fair(1);
  request.key_limit->age = std::chrono::minutes(30);
  // One slot: b's job has waited past the ageing and goes first.
  EXPECT_EQ(byKey(db, repo.claim(request)), (std::map<std::string, int>{{"b", 1}}));
  EXPECT_EQ(byKey(db, repo.claim(request)), (std::map<std::string, int>{{"a", 1}}));
}

}  // namespace
}  // namespace jobd::store
