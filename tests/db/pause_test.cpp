// Pauses (schema 14, issue 19): a paused job type, or a paused target of
// it, is not claimed from the pause's COMMIT on; jobd.unpause ends it and
// wakes the daemons; a pause with an end expires by itself.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/errors.hpp"
#include "store/job_repository.hpp"
#include "store/job_store.hpp"
#include "store/status_query.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

std::set<std::string> claimIds(pqxx::connection& conn, const std::string& type, int limit = 10) {
  JobRepository repo(conn, "test-owner");
  std::set<std::string> ids;
  for (const runtime::ClaimedJob& job : repo.claim({type, type, limit}).jobs) {
    ids.insert(std::to_string(job.id));
  }
  return ids;
}

TEST(PauseTest, APausedTypeIsNotClaimedUntilUnpaused) {
  TestDatabase db;
  std::string a = db.scalar("SELECT jobd.enqueue('noop')");
  std::string due =
      db.scalar("SELECT jobd.enqueue('noop', scheduled_start => now() - interval '1 minute')");
  std::string other = db.scalar("SELECT jobd.enqueue('other')");
  EXPECT_EQ(db.scalar("SELECT jobd.pause('noop', reason => 'deploy')"), "f");
  auto conn = db.connect();
  EXPECT_TRUE(claimIds(*conn, "noop").empty());
  EXPECT_EQ(claimIds(*conn, "other"), (std::set<std::string>{other}));
  // Pausing again replaces the pause.
  EXPECT_EQ(db.scalar("SELECT jobd.pause('noop', reason => 'still deploying')"), "t");
  EXPECT_EQ(db.scalar("SELECT count(*) || ':' || min(reason) FROM jobd.paused"),
            "1:still deploying");
  EXPECT_TRUE(claimIds(*conn, "noop").empty());
  EXPECT_EQ(db.scalar("SELECT jobd.unpause('noop')"), "t");
  EXPECT_EQ(db.scalar("SELECT jobd.unpause('noop')"), "f");
  EXPECT_EQ(claimIds(*conn, "noop"), (std::set<std::string>{a, due}));
}

// A paused target holds its own jobs, unscheduled or due, and no others.
TEST(PauseTest, APausedTargetHoldsOnlyItsJobs) {
  TestDatabase db;
  db.scalar("SELECT jobd.enqueue('noop', target => 'A')");
  db.scalar(
      "SELECT jobd.enqueue('noop', target => 'A2', "
      "scheduled_start => now() - interval '1 minute')");
  std::string b = db.scalar("SELECT jobd.enqueue('noop', target => 'B')");
  std::string none = db.scalar("SELECT jobd.enqueue('noop')");
  std::string due_b = db.scalar(
      "SELECT jobd.enqueue('noop', target => 'B2', scheduled_start => now() - interval '1 "
      "minute')");
  db.scalar("SELECT jobd.pause('noop', 'A')");
  db.scalar("SELECT jobd.pause('noop', 'A2')");
  db.scalar("SELECT jobd.pause('other', 'B')");  // another type's target of the same name
  auto conn = db.connect();
  EXPECT_EQ(claimIds(*conn, "noop"), (std::set<std::string>{b, none, due_b}));
  db.scalar("SELECT jobd.unpause('noop', 'A')");
  EXPECT_EQ(claimIds(*conn, "noop").size(), 1U);
  EXPECT_EQ(db.scalar("SELECT target FROM jobd.job WHERE status = 0"), "A2");
}

// A pause with an end is over at that end, with nobody to end it; the
// daemon's next wake-up for the type counts it, as it counts a scheduled
// start.
TEST(PauseTest, APauseWithAnEndExpiresByItself) {
  TestDatabase db;
  db.scalar("SELECT jobd.enqueue('noop')");
  db.scalar("SELECT jobd.pause('noop', until => now() + interval '1 hour')");
  auto conn = db.connect();
  EXPECT_TRUE(claimIds(*conn, "noop").empty());
  JobRepository repo(*conn, "test-owner");
  std::optional<double> wake = repo.nextScheduledIn("noop");
  ASSERT_TRUE(wake.has_value());
  EXPECT_GT(*wake, 3500);
  EXPECT_LE(*wake, 3600);
  // A scheduled job due sooner comes first.
  db.scalar("SELECT jobd.enqueue('noop', scheduled_start => now() + interval '10 minutes')");
  wake = repo.nextScheduledIn("noop");
  ASSERT_TRUE(wake.has_value());
  EXPECT_LE(*wake, 600);
  db.scalar("UPDATE jobd.paused SET until = clock_timestamp() RETURNING 1");
  EXPECT_EQ(claimIds(*conn, "noop").size(), 1U);
  // The expired row is dropped by the next pause or unpause of the type.
  EXPECT_EQ(db.scalar("SELECT jobd.unpause('noop')"), "f");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.paused"), "0");
}

TEST(PauseTest, APauseThatEndsInThePastIsRefused) {
  TestDatabase db;
  auto conn = db.connect();
  PauseRequest request;
  request.job_type = "noop";
  request.until = "2001-01-01T00:00:00Z";
  EXPECT_THROW(JobStore(*conn).pause(request), UsageError);
  request.until = "not a time";
  EXPECT_THROW(JobStore(*conn).pause(request), UsageError);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.paused"), "0");
}

// The operator's view: who, why, until when; and jobd.pause and
// jobd.unpause wake the daemons with the NOTIFY an enqueue would send.
TEST(PauseTest, PausesAreListedAndUnpauseNotifies) {
  TestDatabase db;
  auto conn = db.connect();
  JobStore store(*conn);
  PauseRequest request;
  request.job_type = "noop";
  request.target = "T";
  request.for_ = std::chrono::hours(1);
  request.reason = "registry down";
  request.paused_by = "alice@host";
  // An empty paused_by is the database's session_user.
  PauseRequest anonymous;
  anonymous.job_type = "other";
  store.pause(anonymous);
  EXPECT_EQ(db.scalar("SELECT paused_by = session_user FROM jobd.paused"), "t");
  store.unpause("other", std::nullopt);
  auto listener = db.connect();
  struct Receiver : pqxx::notification_receiver {
    using pqxx::notification_receiver::notification_receiver;
    void operator()(const std::string& payload, int) override { payloads.push_back(payload); }
    std::vector<std::string> payloads;
  } receiver(*listener, "jobd");
  EXPECT_FALSE(store.pause(request));
  listener->await_notification(5, 0);
  EXPECT_EQ(receiver.payloads, (std::vector<std::string>{"noop"}));
  EXPECT_TRUE(store.pause(request));
  nlohmann::json pauses = loadStatus(*conn)["paused"];
  ASSERT_EQ(pauses.size(), 1U);
  EXPECT_EQ(pauses[0]["job_type"], "noop");
  EXPECT_EQ(pauses[0]["target"], "T");
  EXPECT_EQ(pauses[0]["paused_by"], "alice@host");
  EXPECT_EQ(pauses[0]["reason"], "registry down");
  EXPECT_FALSE(pauses[0]["until"].is_null());

  listener->await_notification(1, 0);  // the second pause's
  receiver.payloads.clear();
  EXPECT_TRUE(store.unpause("noop", std::string("T")));
  listener->await_notification(5, 0);
  EXPECT_EQ(receiver.payloads, (std::vector<std::string>{"noop"}));
  EXPECT_TRUE(loadStatus(*conn)["paused"].empty());
}

}  // namespace
}  // namespace jobd::store
