#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "store/job_store.hpp"
#include "test_database.hpp"

namespace jobd::store {
namespace {

using testing::TestDatabase;

std::int64_t jobInStatus(const TestDatabase& db, JobStatus status) {
  std::string id = db.scalar(
      "INSERT INTO jobd.job (job_type, status, attempt_count, lease_owner, lease_expires, "
      "scheduled_start) VALUES ('noop', " +
      std::to_string(static_cast<int>(status)) +
      ", 1, 'daemon-a', now() + interval '30 seconds', now() + interval '1 hour') RETURNING id");
  return std::stoll(id);
}

// Every operator command from every status: the table decides, the row
// follows, and refusals carry Launchpad's message and change nothing.
TEST(JobStoreTest, OperatorActionsFromEveryStatus) {
  TestDatabase db;
  auto conn = db.connect();
  JobStore store(*conn);
  for (OperatorAction action : {OperatorAction::kRetry, OperatorAction::kSuspend,
                                OperatorAction::kResume, OperatorAction::kCancel}) {
    for (JobStatus from : kAllJobStatuses) {
      SCOPED_TRACE(std::string(actionName(action)) + " from " + std::string(statusName(from)));
      std::int64_t id = jobInStatus(db, from);
      std::string where = " FROM jobd.job WHERE id = " + std::to_string(id);
      if (operatorMayApply(action, from)) {
        TransitionResult r = store.apply(id, action, "no longer needed");
        EXPECT_EQ(r.from, from);
        EXPECT_EQ(db.scalar("SELECT status" + where),
                  std::to_string(static_cast<int>(actionTarget(action))));
        EXPECT_EQ(db.scalar("SELECT lease_expires IS NULL" + where), "t");
      } else {
        try {
          store.apply(id, action, "");
          ADD_FAILURE() << "no exception";
        } catch (const TransitionError& e) {
          EXPECT_EQ(std::string(e.what()), invalidTransitionMessage(from, actionTarget(action)));
        }
        EXPECT_EQ(db.scalar("SELECT status" + where), std::to_string(static_cast<int>(from)));
      }
    }
  }
}

// retry makes a job runnable now; cancel records the reason and, for a
// running job, an attempt row naming its daemon.
TEST(JobStoreTest, RetryAndCancelColumns) {
  TestDatabase db;
  auto conn = db.connect();
  JobStore store(*conn);
  std::int64_t failed = jobInStatus(db, JobStatus::kFailed);
  store.apply(failed, OperatorAction::kRetry, "");
  EXPECT_EQ(db.scalar("SELECT concat_ws(',', status, scheduled_start IS NULL, "
                      "date_finished IS NOT NULL) FROM jobd.job WHERE id = " +
                      std::to_string(failed)),
            "0,t,t");

  std::int64_t running = jobInStatus(db, JobStatus::kRunning);
  store.apply(running, OperatorAction::kCancel, "duplicate request");
  EXPECT_EQ(db.scalar("SELECT concat_ws(',', status, log, date_finished IS NOT NULL) "
                      "FROM jobd.job WHERE id = " +
                      std::to_string(running)),
            "3,duplicate request,t");
  EXPECT_EQ(db.scalar("SELECT concat_ws(',', attempt, daemon, outcome, error_type, error_message) "
                      "FROM jobd.job_attempt WHERE job_id = " +
                      std::to_string(running)),
            "1,daemon-a,failed,Cancelled,duplicate request");
}

// A missing job is NotFoundError, not a transition error.
// retry-failed: the window and the error type pick the jobs, oldest
// first, up to the limit; each batch of kRetryBatch is its own transaction
// (one xmin per batch); a row another transaction holds is passed over.
TEST(JobStoreTest, RetryFailedIsBoundedAndBatched) {
  TestDatabase db;
  db.scalar(
      "INSERT INTO jobd.job (job_type, status, attempt_count, date_finished, log) "
      "SELECT 'report', 3, 1, now() - interval '2 hours' + i * interval '1 s', "
      "CASE WHEN i % 10 = 0 THEN 'KeyError: k' ELSE 'ValueError: v' END "
      "FROM generate_series(1, 1400) AS i RETURNING 1");
  const std::string held = db.scalar("SELECT min(id) FROM jobd.job WHERE log LIKE 'ValueError%'");
  auto holder = db.connect();
  pqxx::work lock(*holder);
  lock.exec("SELECT 1 FROM jobd.job WHERE id = " + held + " FOR UPDATE");
  auto conn = db.connect();
  RetryFailedRequest request;
  request.job_type = "report";
  request.error_type = "ValueError";
  request.since_ago = std::chrono::hours(3);
  request.limit = 1200;
  EXPECT_EQ(JobStore(*conn).retryFailed(request), 1200);
  lock.abort();
  EXPECT_EQ(db.scalar("SELECT count(DISTINCT xmin::text) FROM jobd.job WHERE status = 0"), "3");
  // The oldest 1,200 ValueErrors but the one held; no KeyError.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE status = 0 AND log LIKE 'KeyError%'"),
            "0");
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + held), "3");
  EXPECT_EQ(db.scalar("SELECT max(id) FROM jobd.job WHERE status = 0"),
            db.scalar("SELECT id FROM jobd.job WHERE log LIKE 'ValueError%' ORDER BY id "
                      "OFFSET 1200 LIMIT 1"));
  request.limit = 0;
  EXPECT_THROW(JobStore(*conn).retryFailed(request), UsageError);
}

TEST(JobStoreTest, MissingJob) {
  TestDatabase db;
  auto conn = db.connect();
  EXPECT_THROW(JobStore(*conn).apply(424242, OperatorAction::kRetry, ""), NotFoundError);
  EXPECT_FALSE(JobStore(*conn).show(424242).has_value());
}

// Enqueue checks the payload as PostgreSQL stores it, and --unique reuses.
TEST(JobStoreTest, EnqueueValidatesAndReuses) {
  TestDatabase db;
  auto conn = db.connect();
  JobStore store(*conn);
  EnqueueRequest r;
  r.job_type = "noop";
  r.json_data = R"({"text": "it's a \"quote\" and $1 and '); DROP TABLE x; --"})";
  std::int64_t id = store.enqueue(r);
  EXPECT_EQ((*store.show(id))["json_data"]["text"],
            "it's a \"quote\" and $1 and '); DROP TABLE x; --");

  r.json_data = R"({"pad": ")" + std::string(2000, 'x') + "\"}";
  r.max_payload = 1000;
  EXPECT_THROW(store.enqueue(r), DataError);
  r.json_data = "{\"a\": \"\\u0000\"}";  // valid JSON that jsonb refuses
  r.max_payload = 1000;
  EXPECT_THROW(store.enqueue(r), DataError);

  EnqueueRequest unique;
  unique.job_type = "diff";
  unique.target = "mp:3";
  unique.unique = true;
  std::int64_t a = store.enqueue(unique);
  EXPECT_EQ(store.enqueue(unique), a);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'diff'"), "1");
}

// --delay and --at schedule by the database clock; a time without an offset is UTC.
TEST(JobStoreTest, EnqueueSchedules) {
  TestDatabase db;
  auto conn = db.connect();
  JobStore store(*conn);
  EnqueueRequest r;
  r.job_type = "noop";
  r.at = "2031-02-03T04:05:06";
  std::int64_t at = store.enqueue(r);
  EXPECT_EQ(
      db.scalar("SELECT scheduled_start = '2031-02-03 04:05:06+00' FROM jobd.job WHERE id = " +
                std::to_string(at)),
      "t");
  r.at.reset();
  r.delay = std::chrono::minutes(5);
  std::int64_t delayed = store.enqueue(r);
  EXPECT_EQ(db.scalar("SELECT scheduled_start - date_created BETWEEN interval '299 seconds' AND "
                      "interval '301 seconds' FROM jobd.job WHERE id = " +
                      std::to_string(delayed)),
            "t");
}

}  // namespace
}  // namespace jobd::store
