#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "core/job_errors.hpp"
#include "runtime/job_executor.hpp"
#include "sql/sql_handler.hpp"
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

// What JobContext::prepared held when a job ran, and its backend.
struct SeenPrepared {
  bool tracked = false;
  std::set<std::string> names;
  int pid = 0;
};

// Notes what it finds, then adds a name, as the sql handler does after its
// PREPARE.
class NotePrepared : public IRunnableJob {
 public:
  explicit NotePrepared(SeenPrepared& seen) : seen_(seen) {}
  void run(JobContext& context) override {
    seen_.tracked = context.prepared != nullptr;
    seen_.names = context.prepared ? *context.prepared : std::set<std::string>{};
    if (context.prepared) {
      context.prepared->insert("noted");
    }
    seen_.pid = context.transaction->exec1("SELECT pg_backend_pid()")[0].as<int>();
  }

 private:
  SeenPrepared& seen_;
};

class NotePreparedSource : public IJobSource {
 public:
  explicit NotePreparedSource(SeenPrepared& seen) : seen_(seen) {}
  bool usesDatabase() const override { return true; }
  std::unique_ptr<IRunnableJob> makeRunnable(const ClaimedJob&,
                                             const nlohmann::json&) const override {
    return std::make_unique<NotePrepared>(seen_);
  }

 private:
  SeenPrepared& seen_;
};

// Runs one statement in the job's transaction.
class RunStatement : public IRunnableJob, public IJobSource {
 public:
  explicit RunStatement(std::string sql) : sql_(std::move(sql)) {}
  void run(JobContext& context) override { context.transaction->exec(sql_); }
  bool usesDatabase() const override { return true; }
  std::unique_ptr<IRunnableJob> makeRunnable(const ClaimedJob&,
                                             const nlohmann::json&) const override {
    return std::make_unique<RunStatement>(sql_);
  }

 private:
  std::string sql_;
};

ClaimedJob someJob() {
  ClaimedJob job;
  job.id = 1;  // no such row: the COMPLETED mark finds nothing, and nothing commits
  job.job_type = "prepared";
  job.section = "prepared";
  job.attempt = 1;
  return job;
}

void terminateBackend(const TestDatabase& db, int pid) {
  pqxx::connection admin(db.conninfo());
  pqxx::nontransaction(admin).exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  for (int i = 0; i < 100; ++i) {
    if (pqxx::nontransaction(admin)
            .exec("SELECT 1 FROM pg_stat_activity WHERE pid = " + std::to_string(pid))
            .empty()) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL() << "backend " << pid << " did not end";
}

// A handler learns which statements it prepared on the job's connection
// (the sql handler then runs its statement without first asking the
// server), for as long as that connection lives: a new connection starts
// with none, and through a pooler (each transaction on any server
// connection) it is not told at all.
TEST(JobExecutorTest, PreparedStatementsAreKnownPerConnection) {
  TestDatabase db;
  config::SectionConfig section;
  section.timeout = std::chrono::seconds(60);
  SeenPrepared seen;
  NotePreparedSource source(seen);
  CancellationToken first_token;
  JobExecutor executor(db.conninfo(), "test-owner");
  JobOutcome outcome = executor.execute(someJob(), source, section, first_token);
  ASSERT_TRUE(outcome.error_type.empty()) << outcome.error_type << ": " << outcome.message;
  EXPECT_TRUE(seen.tracked);
  EXPECT_TRUE(seen.names.empty());
  int first_pid = seen.pid;

  CancellationToken second_token;
  executor.execute(someJob(), source, section, second_token);
  EXPECT_EQ(seen.pid, first_pid);
  EXPECT_EQ(seen.names, std::set<std::string>{"noted"});

  terminateBackend(db, first_pid);
  CancellationToken third_token;
  outcome = executor.execute(someJob(), source, section, third_token);
  ASSERT_TRUE(outcome.error_type.empty()) << outcome.error_type << ": " << outcome.message;
  EXPECT_NE(seen.pid, first_pid);
  EXPECT_TRUE(seen.names.empty());

  CancellationToken pooled_token;
  JobExecutor pooled(db.conninfo(), "test-owner", true);
  pooled.execute(someJob(), source, section, pooled_token);
  EXPECT_FALSE(seen.tracked);
}

// The sql handler prepares its statement again on a new connection: a
// stale name would make EXECUTE fail (SQLSTATE 26000, an OOPS).
TEST(JobExecutorTest, TheSqlHandlerPreparesAgainOnANewConnection) {
  TestDatabase db;
  config::SectionConfig section;
  section.timeout = std::chrono::seconds(60);
  section.handler_options["statement"] = "SELECT pg_backend_pid() AS pid, $2 AS id";
  std::unique_ptr<IJobSource> sql = jobtypes::makeSqlSource(section);
  SeenPrepared seen;
  NotePreparedSource note(seen);
  JobExecutor executor(db.conninfo(), "test-owner");
  for (int round = 0; round < 2; ++round) {
    CancellationToken token;
    JobOutcome outcome = executor.execute(someJob(), *sql, section, token);
    EXPECT_TRUE(outcome.error_type.empty()) << outcome.error_type << ": " << outcome.message;
    EXPECT_TRUE(outcome.lease_lost);  // it ran, and found no row to mark
  }
  CancellationToken note_token;
  executor.execute(someJob(), note, section, note_token);
  ASSERT_EQ(seen.names.size(), 1U);  // the sql statement's, prepared once
  EXPECT_EQ(seen.names.begin()->rfind("jobd_sql3_", 0), 0U);
  terminateBackend(db, seen.pid);
  CancellationToken token;
  JobOutcome outcome = executor.execute(someJob(), *sql, section, token);
  EXPECT_TRUE(outcome.error_type.empty()) << outcome.error_type << ": " << outcome.message;
  EXPECT_TRUE(outcome.lease_lost);

  // A statement deallocated in the session (by a job's own SQL) fails the
  // one job that finds it gone; the next prepares it again.
  RunStatement deallocate("DEALLOCATE ALL");
  CancellationToken deallocate_token;
  executor.execute(someJob(), deallocate, section, deallocate_token);
  CancellationToken gone_token;
  outcome = executor.execute(someJob(), *sql, section, gone_token);
  EXPECT_EQ(outcome.error_type, "SqlState26000") << outcome.message;
  CancellationToken again_token;
  outcome = executor.execute(someJob(), *sql, section, again_token);
  EXPECT_TRUE(outcome.error_type.empty()) << outcome.error_type << ": " << outcome.message;
  EXPECT_TRUE(outcome.lease_lost);
}

}  // namespace
}  // namespace jobd::runtime
