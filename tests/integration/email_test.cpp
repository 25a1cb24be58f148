// The email handler and notices against a real SMTP server (Debian's
// python3-aiosmtpd, tests/support/smtp_server.py, started by the test).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;
namespace fs = std::filesystem;

int freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

class EmailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freePort();
    dir_ = ::testing::TempDir() + "jobd_smtp_" + db_.name();
    fs::create_directories(dir_);
    server_ = std::make_unique<testing::Process>(std::vector<std::string>{
        "/usr/bin/python3", std::string(JOBD_SOURCE_DIR) + "/tests/support/smtp_server.py",
        std::to_string(port_), dir_});
    ASSERT_TRUE(server_->waitForOutput("ready", std::chrono::seconds(20))) << server_->errSoFar();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string config(const std::string& smtp_url = "") const {
    return "[mail]\nsmtp_url: " +
           (smtp_url.empty() ? "smtp://127.0.0.1:" + std::to_string(port_) : smtp_url) +
           "\nfrom_address: jobd@example.com\nproduct_name: Launchpad\n"
           "[email]\nmax_retries: 3\nretry_delay: 500ms\n"
           "[fail]\nerror_recipients: ops@example.com, oncall@example.com\n";
  }

  // Accepted (or, with prefix "rejected-", refused) messages, in order.
  std::vector<nlohmann::json> messages(const std::string& prefix = "") const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      std::string name = entry.path().filename();
      bool rejected = name.rfind("rejected-", 0) == 0;
      if (name.size() > 5 && name.substr(name.size() - 5) == ".json" &&
          rejected == (prefix == "rejected-")) {
        names.push_back(entry.path());
      }
    }
    std::sort(names.begin(), names.end());
    std::vector<nlohmann::json> out;
    for (const std::string& name : names) {
      out.push_back(nlohmann::json::parse(std::ifstream(name)));
    }
    return out;
  }

  std::vector<nlohmann::json> waitForMessages(std::size_t n) const {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::vector<nlohmann::json> got;
    while ((got = messages()).size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return got;
  }

  static std::string header(const nlohmann::json& message, const std::string& name) {
    std::string data = "\r\n" + message["data"].get<std::string>();
    std::size_t at = data.find("\r\n" + name + ": ");
    if (at == std::string::npos) {
      return "";
    }
    std::size_t start = at + name.size() + 4;
    return data.substr(start, data.find("\r\n", start) - start);
  }

  static std::string body(const nlohmann::json& message) {
    std::string data = message["data"];
    return data.substr(data.find("\r\n\r\n") + 4);
  }

  TestDatabase db_;
  int port_ = 0;
  std::string dir_;
  std::unique_ptr<testing::Process> server_;
};

TEST_F(EmailTest, DeliversTheMessageWithItsHeaders) {
  Daemon daemon(db_, config());
  ASSERT_TRUE(daemon.waitReady());
  std::string id = db_.scalar(
      R"(SELECT jobd.enqueue('email', '{"to": ["a@example.com", "b@example.com"],
         "cc": ["c@example.com"], "subject": "Caf\u00e9 report", "body": "line one\n.line two\n",
         "headers": {"X-Launchpad-Reason": "subscriber"}}'))");
  EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "2"), "2");
  std::vector<nlohmann::json> got = waitForMessages(1);
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0]["from"], "jobd@example.com");
  EXPECT_EQ(got[0]["rcpt"], nlohmann::json({"a@example.com", "b@example.com", "c@example.com"}));
  EXPECT_EQ(header(got[0], "To"), "a@example.com, b@example.com");
  EXPECT_EQ(header(got[0], "Cc"), "c@example.com");
  EXPECT_EQ(header(got[0], "Subject"), "=?UTF-8?B?Q2Fmw6kgcmVwb3J0?=");
  EXPECT_THAT(header(got[0], "Message-ID"),
              ::testing::MatchesRegex("<jobd\\.email\\." + id + "@.+>"));
  EXPECT_EQ(header(got[0], "X-Launchpad-Reason"), "subscriber");
  EXPECT_EQ(header(got[0], "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(body(got[0]), "line one\r\n.line two\r\n");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// A 451 at DATA makes a retry, which sends the same message: the same
// Message-ID, so that a receiver can tell it is not a second message.
TEST_F(EmailTest, RetrySendsTheSameMessageId) {
  Daemon daemon(db_, config());
  ASSERT_TRUE(daemon.waitReady());
  std::string id = db_.scalar(
      R"(SELECT jobd.enqueue('email', '{"to": "flaky-1@example.com", "subject": "s", "body": "b"}',
         max_retries => 3))");
  EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + id, "2"), "2");
  std::vector<nlohmann::json> refused = messages("rejected-");
  std::vector<nlohmann::json> accepted = waitForMessages(1);
  ASSERT_EQ(refused.size(), 1U);
  ASSERT_EQ(accepted.size(), 1U);
  EXPECT_EQ(header(refused[0], "Message-ID"), header(accepted[0], "Message-ID"));
  EXPECT_EQ(db_.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + id), "2");
  EXPECT_EQ(
      db_.scalar("SELECT outcome || ' ' || error_type FROM jobd.job_attempt WHERE job_id = " + id),
      "retry SmtpTemporaryError");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

TEST_F(EmailTest, TemporaryFailureRetriesPermanentOneIsAUserError) {
  Daemon daemon(db_, config());
  ASSERT_TRUE(daemon.waitReady());
  std::string later = db_.scalar(
      R"(SELECT jobd.enqueue('email', '{"to": "tempfail-1@example.com", "subject": "s", "body": "b"}'))");
  std::string never = db_.scalar(
      R"(SELECT jobd.enqueue('email', '{"to": "reject-1@example.com", "subject": "s", "body": "b"}'))");
  std::string bad = db_.scalar(
      R"(SELECT jobd.enqueue('email', '{"to": "not an address", "subject": "s", "body": "b"}'))");
  EXPECT_EQ(waitForValue(db_, "SELECT count(*) FROM jobd.job_attempt WHERE job_id = " + later, "1"),
            "1");
  EXPECT_EQ(db_.scalar("SELECT outcome FROM jobd.job_attempt WHERE job_id = " + later + " LIMIT 1"),
            "retry");
  EXPECT_THAT(db_.scalar("SELECT log FROM jobd.job WHERE id = " + later),
              HasSubstr("SmtpTemporaryError: SMTP 451 4.3.0 Try again later"));
  EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + never, "3"), "3");
  // The server's own reply, code and text (jobtypes/email/README.md).
  EXPECT_EQ(db_.scalar("SELECT log FROM jobd.job WHERE id = " + never),
            "SMTP 550 5.1.1 No such user");
  EXPECT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + bad, "3"), "3");
  EXPECT_THAT(db_.scalar("SELECT log FROM jobd.job WHERE id = " + bad), HasSubstr("bad address"));
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobd.oops"), "0");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// Launchpad's notices: an OOPS notice to json_data.notify and the
// section's error_recipients; a user-error notice to json_data.notify.
TEST_F(EmailTest, OopsAndUserErrorNotices) {
  Daemon daemon(db_, config());
  ASSERT_TRUE(daemon.waitReady());
  std::string oops = db_.scalar(
      R"(SELECT jobd.enqueue('fail', '{"error": "oops", "notify": ["user@example.com"]}'))");
  ASSERT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + oops, "3"), "3");
  std::vector<nlohmann::json> got = waitForMessages(1);
  ASSERT_EQ(got.size(), 1U);
  std::string oops_id = db_.scalar("SELECT id FROM jobd.oops WHERE job_id = " + oops);
  EXPECT_EQ(got[0]["rcpt"],
            nlohmann::json({"user@example.com", "ops@example.com", "oncall@example.com"}));
  EXPECT_EQ(header(got[0], "Subject"), "Launchpad internal error");
  EXPECT_EQ(body(got[0]),
            "Launchpad encountered an internal error during the following operation: running a "
            "fail job.  It was logged with id " +
                oops_id + ".  Sorry for the inconvenience.\r\n");

  std::string user = db_.scalar(
      R"(SELECT jobd.enqueue('fail', '{"error": "user", "message": "The branch is gone.",
         "notify": ["user@example.com"]}'))");
  ASSERT_EQ(waitForValue(db_, "SELECT status FROM jobd.job WHERE id = " + user, "3"), "3");
  got = waitForMessages(2);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[1]["rcpt"], nlohmann::json({"user@example.com"}));
  EXPECT_EQ(header(got[1], "Subject"), "Launchpad error while running a fail job");
  EXPECT_EQ(body(got[1]),
            "Launchpad encountered an error during the following operation: running a fail job.  "
            "The branch is gone.\r\n");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// A notice that cannot be sent is logged and recorded as a second OOPS;
// the job's outcome stands.
TEST_F(EmailTest, UnsentNoticeIsASecondOops) {
  Daemon daemon(db_, config("smtp://127.0.0.1:" + std::to_string(freePort())));
  ASSERT_TRUE(daemon.waitReady());
  std::string id = db_.scalar(
      R"(SELECT jobd.enqueue('fail', '{"error": "oops", "notify": ["user@example.com"]}'))");
  EXPECT_EQ(waitForValue(db_, "SELECT count(*) FROM jobd.oops WHERE job_id = " + id, "2"), "2");
  EXPECT_EQ(
      db_.scalar("SELECT string_agg(type, ',' ORDER BY type) FROM jobd.oops WHERE job_id = " + id),
      "FailError,NoticeError");
  EXPECT_EQ(db_.scalar("SELECT status || ' ' || log FROM jobd.job WHERE id = " + id),
            "3 FailError: failed as asked");
  EXPECT_THAT(daemon.log(), HasSubstr("NOTICE_FAILED job=" + id));
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
