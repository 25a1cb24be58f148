#include "runtime/worker_protocol.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/oops.hpp"

namespace jobd::runtime::worker {
namespace {

TEST(WorkerProtocolTest, FramesRoundTripOverASocket) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  nlohmann::json message = {{"op", "job"}, {"text", std::string(100000, 'x') + "'\"\\$1"}};
  writeFrame(fds[0], message);
  writeFrame(fds[0], {{"op", "may_commit"}});
  close(fds[0]);
  EXPECT_EQ(readFrame(fds[1]), message);
  EXPECT_EQ(readFrame(fds[1])->at("op"), "may_commit");
  EXPECT_FALSE(readFrame(fds[1]).has_value());  // end of file between frames
  close(fds[1]);
}

TEST(WorkerProtocolTest, BrokenFramesAreErrors) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::string frame = encodeFrame({{"op", "job"}});
  ASSERT_EQ(write(fds[0], frame.data(), frame.size() - 2), static_cast<ssize_t>(frame.size() - 2));
  close(fds[0]);
  EXPECT_THROW(readFrame(fds[1]), std::runtime_error);
  close(fds[1]);

  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  const unsigned char huge[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  ASSERT_EQ(write(fds[0], huge, 4), 4);
  EXPECT_THROW(readFrame(fds[1]), std::runtime_error);
  close(fds[0]);
  close(fds[1]);
}

TEST(WorkerProtocolTest, JobSectionAndOutcomeRoundTrip) {
  ClaimedJob job;
  job.id = 42;
  job.job_type = "t";
  job.section = "s";
  job.attempt = 2;
  job.max_retries = 3;
  job.priority = -1;
  job.target = "merge_proposal:7";
  job.json_data = R"({"a": "b"})";
  job.payload_size = 10;
  job.checkpoint = R"({"next": 8})";
  job.claimed_at = std::chrono::steady_clock::now();
  ClaimedJob back = jobFromJson(jobToJson(job));
  EXPECT_EQ(back.checkpoint, job.checkpoint);
  job.checkpoint.reset();
  EXPECT_FALSE(jobFromJson(jobToJson(job)).checkpoint.has_value());
  EXPECT_EQ(back.id, 42);
  EXPECT_EQ(back.target, job.target);
  EXPECT_EQ(back.json_data, job.json_data);
  EXPECT_EQ(back.claimed_at, job.claimed_at);

  config::SectionConfig section;
  section.name = "s";
  section.handler = "exec";
  section.job_type = "t";
  section.dbuser = "u";
  section.memory_limit = 1U << 28;
  section.max_retries = 4;
  section.handler_options["command"] = "/bin/true";
  config::SectionConfig section_back = sectionFromJson(sectionToJson(section));
  EXPECT_EQ(section_back.memory_limit, section.memory_limit);
  EXPECT_EQ(section_back.max_retries, 4);  // a Python worker's notifyOops needs it
  EXPECT_EQ(section_back.handler_options, section.handler_options);
  EXPECT_EQ(section_back.timeout, section.timeout);

  JobOutcome outcome;
  outcome.kind = OutcomeKind::kCrashed;
  outcome.error_type = "Signal11";
  outcome.message = "m";
  outcome.traceback = "bytes \xFF cut";
  outcome.oops_vars["k"] = "v";
  outcome.committed = true;
  JobOutcome outcome_back =
      outcomeFromJson(nlohmann::json::parse(encodeFrame(outcomeToJson(outcome)).substr(4)), job);
  EXPECT_EQ(outcome_back.kind, OutcomeKind::kCrashed);
  EXPECT_EQ(outcome_back.traceback, "bytes \xEF\xBF\xBD cut");
  EXPECT_EQ(outcome_back.oops_vars, outcome.oops_vars);
  EXPECT_TRUE(outcome_back.committed);
  EXPECT_EQ(outcome_back.job.id, 42);
}

// The hello frame carries PgBouncer mode to the child (issue 18, item
// 10: a process runner made session settings on a pooled connection,
// which stayed there for the pool's other clients).
TEST(WorkerProtocolTest, HelloCarriesPooledMode) {
  Hello hello;
  hello.section.name = "s";
  hello.section.handler = "noop";
  hello.section.job_type = "s";
  hello.conninfo = "host=pgbouncer";
  hello.pooled = true;
  hello.owner = "h:1:abcd";
  hello.log_level = "info";
  hello.daemon_pid = 42;
  nlohmann::json frame = helloToJson(hello);
  EXPECT_EQ(frame["op"], "hello");
  EXPECT_EQ(frame["pooled"], true);
  Hello back = helloFromJson(nlohmann::json::parse(frame.dump()));
  EXPECT_TRUE(back.pooled);
  EXPECT_EQ(back.conninfo, "host=pgbouncer");
  EXPECT_EQ(back.daemon_pid, 42);
  EXPECT_EQ(back.section.name, "s");
  // A Python worker connects for the job's own work as the section's dbuser.
  hello.section.dbuser = "karma";
  EXPECT_EQ(helloToJson(hello)["job_conninfo"], "host='pgbouncer' user='karma' password=''");
}

// What a Python job class adds to its outcome (runner = python, issue
// 20): its max_retries replaces the row's, and its retry_delay, error
// recipients, own notice and OOPS id come through; a jobd worker's
// outcome, without them, changes nothing.
TEST(WorkerProtocolTest, PythonOutcomeKeys) {
  ClaimedJob job;
  job.id = 7;
  job.max_retries = 0;
  nlohmann::json frame = {{"kind", "retry"},
                          {"error_type", "TransientError"},
                          {"message", "later"},
                          {"traceback", ""},
                          {"oops_vars", {{"person", "mark"}}},
                          {"operation", "recording karma"},
                          {"duration_us", 5},
                          {"release_delay_ms", 0},
                          {"committed", false},
                          {"lease_lost", false},
                          {"in_doubt", false},
                          {"result", nullptr},
                          {"max_retries", 3},
                          {"retry_delay_ms", 30000},
                          {"recipients", {"ops@example.com"}},
                          {"notified", true},
                          {"oops_id", "OOPS-0123456789abcdef"}};
  JobOutcome o = outcomeFromJson(frame, job);
  EXPECT_EQ(o.kind, OutcomeKind::kRetry);
  EXPECT_EQ(o.job.max_retries, 3);
  EXPECT_EQ(o.retry_delay, Duration(30000));
  EXPECT_EQ(o.recipients, std::vector<std::string>{"ops@example.com"});
  EXPECT_TRUE(o.notified);
  EXPECT_EQ(o.oops_id, "OOPS-0123456789abcdef");
  JobOutcome back = outcomeFromJson(outcomeToJson(o), job);
  EXPECT_EQ(back.job.max_retries, 0);  // a jobd worker never overrides it
  EXPECT_EQ(back.retry_delay, o.retry_delay);
  EXPECT_EQ(back.recipients, o.recipients);
  EXPECT_TRUE(back.notified);
  EXPECT_EQ(back.oops_id, o.oops_id);
  for (const char* key : {"max_retries", "retry_delay_ms", "recipients", "notified", "oops_id"}) {
    frame.erase(key);
  }
  JobOutcome plain = outcomeFromJson(frame, job);
  EXPECT_EQ(plain.job.max_retries, 0);
  EXPECT_FALSE(plain.retry_delay.has_value());
  EXPECT_TRUE(plain.recipients.empty());
  EXPECT_FALSE(plain.notified);
  EXPECT_FALSE(plain.oops_id.has_value());
  // An id jobd would not make is dropped, and with it the job's claim to
  // have sent its own notice: jobd sends one for the OOPS it names.
  frame["oops_id"] = "OOPS-; DROP TABLE";
  frame["notified"] = true;
  JobOutcome bad = outcomeFromJson(frame, job);
  EXPECT_FALSE(bad.oops_id.has_value());
  EXPECT_FALSE(bad.notified);
  EXPECT_TRUE(validOopsId("OOPS-0123456789abcdef"));
  EXPECT_FALSE(validOopsId("OOPS-0123456789ABCDEF"));
  EXPECT_FALSE(validOopsId("OOPS-0123"));
}

}  // namespace
}  // namespace jobd::runtime::worker
