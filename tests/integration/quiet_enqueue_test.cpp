// The quiet enqueue (migration 9, runtime/sleeper.hpp): enqueues NOTIFY only
// while a daemon sleeps on their type, and no wake-up is lost. With a 60 s
// poll, a lost wake-up would leave a job waiting for a minute.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "daemon.hpp"

namespace jobd {
namespace {

using testing::Daemon;
using testing::TestDatabase;
using testing::waitForValue;
using namespace std::chrono_literals;

// Web requests in bursts and lulls: eight clients, each enqueuing in a
// transaction that stays open a few milliseconds, sometimes pausing long
// enough for the daemon to fall asleep. Every job starts within a second
// of its commit, so the daemon was woken (or polling) every time.
TEST(QuietEnqueueTest, BurstsAndLullsLoseNoWakeUp) {
  TestDatabase db;
  Daemon daemon(db, "[jobd]\npoll_interval: 60s\n[noop]\nconcurrency: 4\n");
  ASSERT_TRUE(daemon.waitReady());
  constexpr int kClients = 8;
  std::vector<std::thread> clients;
  std::vector<std::string> errors(kClients);
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      try {
        std::mt19937 rng(static_cast<unsigned>(c) * 7919U + 1U);
        auto conn = db.connect();
        auto until = std::chrono::steady_clock::now() + 6s;
        while (std::chrono::steady_clock::now() < until) {
          {
            pqxx::work txn(*conn);
            std::string id = txn.exec("SELECT jobd.enqueue('noop')")[0][0].c_str();
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
            txn.exec("UPDATE jobd.job SET date_created = clock_timestamp() WHERE id = " + id);
            txn.commit();
          }
          int lull = static_cast<int>(rng() % 100);
          std::this_thread::sleep_for(lull < 90 ? std::chrono::milliseconds(rng() % 20)
                                                : std::chrono::milliseconds(150 + rng() % 300));
        }
      } catch (const std::exception& e) {
        errors[c] = e.what();
      }
    });
  }
  for (auto& client : clients) {
    client.join();
  }
  for (const std::string& error : errors) {
    EXPECT_EQ(error, "");
  }
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status <> 2", "0", 10s), "0")
      << daemon.log();
  EXPECT_GT(std::stoi(db.scalar("SELECT count(*) FROM jobd.job")), 500);
  // date_created is set just before COMMIT: the wait from commit to claim.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job "
                      "WHERE date_started - date_created > interval '1 second'"),
            "0")
      << db.scalar("SELECT max(date_started - date_created) FROM jobd.job");
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

}  // namespace
}  // namespace jobd
