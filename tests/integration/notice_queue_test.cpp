// The notice queue (issue 18, item 9): bounded, and never in the way of a
// stop. The mail server here accepts connections and never answers, so
// each send would wait for libcurl's 60 s timeout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;

// A TCP port that takes connections into its backlog and never says a word.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(fd_, 64), 0);
    socklen_t size = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  int port() const { return port_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::string config(int port) {
  return "[jobd]\npoll_interval: 1s\nworkers: 16\n[mail]\nsmtp_url: smtp://127.0.0.1:" +
         std::to_string(port) + "\nfrom_address: jobd@example.com\n[fail]\nconcurrency: 16\n";
}

// Two jobs that fail with a user error and a notice to send, both written
// FAILED (their sends wait in the server's backlog); then jobd.oops is
// locked by `lock`, so that the NoticeError records wait for it.
void failTwoNoticesAndLockTheOopsTable(TestDatabase& db, Daemon& daemon, pqxx::work& lock) {
  db.scalar(
      R"(SELECT count(jobd.enqueue('fail', '{"error": "user", "message": "no", "notify": "a@example.com"}')) FROM generate_series(1, 2))");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 3", "2"), "2")
      << daemon.log();
  lock.exec("LOCK TABLE jobd.oops IN ACCESS EXCLUSIVE MODE");
}

// Notices queued behind a mail server that never answers do not hold up
// the stop: the send in flight is aborted and every notice not sent is
// recorded as a NoticeError OOPS of its job. Before, the stop sent them
// one by one, each waiting up to a minute.
TEST(NoticeQueueTest, AStopRecordsTheUnsentNoticesInsteadOfWaitingForThem) {
  TestDatabase db;
  SilentServer smtp;
  Daemon daemon(db, config(smtp.port()));
  ASSERT_TRUE(daemon.waitReady());
  db.scalar(
      R"(SELECT count(jobd.enqueue('fail', '{"error": "user", "message": "no", "notify": "a@example.com"}')) FROM generate_series(1, 20))");
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 3", "20"), "20")
      << daemon.log();
  auto before = std::chrono::steady_clock::now();
  testing::ProcessResult stopped = daemon.stop();
  EXPECT_EQ(stopped.exit_code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - before, 15s) << stopped.err;
  EXPECT_EQ(db.scalar("SELECT count(DISTINCT job_id) FROM jobd.oops WHERE type = 'NoticeError' "
                      "AND value = 'could not send the user error notice: jobd stopped before it "
                      "was sent'"),
            "20")
      << stopped.err;
  // The 19 still queued in one statement (one transaction's now()), not one
  // round trip each; the one in flight is recorded as its send ends.
  EXPECT_EQ(db.scalar("SELECT max(n) FROM (SELECT count(*) AS n FROM jobd.oops "
                      "WHERE type = 'NoticeError' GROUP BY time) AS t"),
            "19");
}

// A notice whose send is in flight at the stop, behind the record of an
// earlier failed send that the outcomes thread is still writing (the test
// holds jobd.oops locked): both NoticeErrors are written before the daemon
// exits. Before (issue 18 review), the records were posted to the outcomes
// thread without waiting, and the stop of that thread, which follows at
// once, dropped the second.
TEST(NoticeQueueTest, TheSendInFlightAtAStopIsRecorded) {
  TestDatabase db;
  SilentServer smtp;
  Daemon daemon(db, config(smtp.port()));
  ASSERT_TRUE(daemon.waitReady());
  auto locker = db.connect();
  pqxx::work lock(*locker);
  failTwoNoticesAndLockTheOopsTable(db, daemon, lock);
  if (::testing::Test::HasFatalFailure()) {
    return;
  }
  // The first send fails at once; its record waits for the lock. The
  // second send connects and waits for a greeting.
  ::close(::accept(smtp.fd(), nullptr, nullptr));
  std::this_thread::sleep_for(500ms);
  std::thread unlock([&] {
    std::this_thread::sleep_for(3500ms);  // within the stop's 5 s wait
    lock.abort();
  });
  testing::ProcessResult stopped = daemon.stop();
  unlock.join();
  EXPECT_EQ(stopped.exit_code, 0);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops WHERE type = 'NoticeError' AND value = "
                      "'could not send the user error notice: jobd stopped before it was sent'"),
            "1")
      << stopped.err;
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops WHERE type = 'NoticeError'"), "2")
      << stopped.err;
}

// Two sends that failed on their own (the server hung up) before the stop,
// their records still waiting for the outcomes thread (the test holds
// jobd.oops locked): the stop waits for both before that thread goes.
// Before, only a send aborted by the stop was waited for.
TEST(NoticeQueueTest, SendsThatFailedBeforeAStopAreRecorded) {
  TestDatabase db;
  SilentServer smtp;
  Daemon daemon(db, config(smtp.port()));
  ASSERT_TRUE(daemon.waitReady());
  auto locker = db.connect();
  pqxx::work lock(*locker);
  failTwoNoticesAndLockTheOopsTable(db, daemon, lock);
  if (::testing::Test::HasFatalFailure()) {
    return;
  }
  ::close(::accept(smtp.fd(), nullptr, nullptr));
  ::close(::accept(smtp.fd(), nullptr, nullptr));
  auto failed = [&] {
    std::string log = daemon.log();
    std::size_t n = 0;
    for (std::size_t at = log.find("NOTICE_FAILED"); at != std::string::npos;
         at = log.find("NOTICE_FAILED", at + 1)) {
      ++n;
    }
    return n;
  };
  for (int i = 0; i < 500 && failed() < 2; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(failed(), 2U) << daemon.log();
  std::thread unlock([&] {
    std::this_thread::sleep_for(3500ms);  // within the stop's 5 s wait
    lock.abort();
  });
  testing::ProcessResult stopped = daemon.stop();
  unlock.join();
  EXPECT_EQ(stopped.exit_code, 0);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops WHERE type = 'NoticeError'"), "2")
      << stopped.err;
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.oops WHERE value LIKE '%jobd stopped%'"), "0");
}

// More notices than the queue holds: the ones that do not fit are recorded
// as NoticeError OOPS reports at once, and the daemon says so once.
TEST(NoticeQueueTest, NoticesBeyondTheBoundAreRecordedAtOnce) {
  TestDatabase db;
  SilentServer smtp;
  Daemon daemon(db, config(smtp.port()));
  ASSERT_TRUE(daemon.waitReady());
  db.scalar(
      R"(SELECT count(jobd.enqueue('fail', '{"error": "user", "message": "no", "notify": "a@example.com"}')) FROM generate_series(1, 1050))");
  // 1,000 queued and one in flight: the other 49 are recorded (fewer if a
  // send gave up meanwhile and made room).
  ASSERT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 3", "1050", 120s),
            "1050");
  const std::string full =
      "SELECT count(*) FROM jobd.oops WHERE value = 'could not send the user error notice: the "
      "notice queue was full'";
  EXPECT_EQ(waitForValue(db, full, "49", 10s), "49") << daemon.log();
  testing::ProcessResult stopped = daemon.stop();
  EXPECT_EQ(stopped.exit_code, 0);
  EXPECT_EQ(db.scalar("SELECT count(DISTINCT job_id) FROM jobd.oops WHERE type = 'NoticeError'"),
            "1050");
  std::size_t said = 0;
  for (std::size_t at = stopped.err.find("NOTICE_QUEUE_FULL"); at != std::string::npos;
       at = stopped.err.find("NOTICE_QUEUE_FULL", at + 1)) {
    ++said;
  }
  EXPECT_EQ(said, 1U);
}

}  // namespace
}  // namespace jobd
