#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "config/config.hpp"
#include "core/job_errors.hpp"
#include "runtime/job_executor.hpp"
#include "test_database.hpp"

namespace jobd::runtime {
namespace {

using testing::TestDatabase;

// A job whose work is one long statement in its own transaction.
class SleepInTransaction : public IRunnableJob {
 public:
  void run(JobContext& context) override {
    try {
      context.transaction->exec("SELECT pg_sleep(30)");
    } catch (const pqxx::sql_error& e) {
      // As the sql handler sorts it: 57014 alone would be an OOPS.
      throw OopsError("SqlState" + e.sqlstate(), e.what());
    }
  }
};

class SleepSource : public IJobSource {
 public:
  bool usesDatabase() const override { return true; }
  std::unique_ptr<IRunnableJob> makeRunnable(const ClaimedJob&,
                                             const nlohmann::json&) const override {
    return std::make_unique<SleepInTransaction>();
  }
};

JobOutcome runStoppedAfter(const TestDatabase& db, CancellationToken& token, bool lose_lease) {
  JobExecutor executor(db.conninfo(), "test-owner");
  ClaimedJob job;
  job.id = 1;
  job.job_type = "sleep";
  job.section = "sleep";
  job.attempt = 1;
  config::SectionConfig section;
  section.timeout = std::chrono::seconds(60);
  SleepSource source;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (lose_lease) {
      token.setLeaseDeadline(std::chrono::steady_clock::time_point::min());
    }
    token.cancel();
  });
  JobOutcome outcome = executor.execute(job, source, section, token);
  stopper.join();
  return outcome;
}

// A job that jobd stops (a release, a superseded attempt) while its query
// runs: the cancelled query (57014) is no fault of the job, so the outcome
// is a Cancelled retry, never an OOPS (review of issue 18: before, it was
// OOPS SqlState57014).
TEST(JobExecutorTest, AQueryCancelledByJobdIsNoOops) {
  TestDatabase db;
  CancellationToken token;
  JobOutcome outcome = runStoppedAfter(db, token, false);
  EXPECT_EQ(outcome.kind, OutcomeKind::kRetry);
  EXPECT_EQ(outcome.error_type, "Cancelled");
  EXPECT_FALSE(outcome.committed);
  EXPECT_FALSE(outcome.lease_lost);
}

// Stopped because its lease is gone: nothing of this attempt is written.
TEST(JobExecutorTest, AQueryCancelledForALostLeaseWritesNothing) {
  TestDatabase db;
  CancellationToken token;
  JobOutcome outcome = runStoppedAfter(db, token, true);
  EXPECT_TRUE(outcome.lease_lost);
  EXPECT_FALSE(outcome.committed);
}

}  // namespace
}  // namespace jobd::runtime
