// LeaseKeeper (runtime/lease_keeper.hpp) against a database that cannot be
// reached: a failed renewal stops claims while a job is held, and claims
// resume once no job is left whose lease could be lost.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "runtime/database_thread.hpp"
#include "runtime/lease_keeper.hpp"

namespace jobd::runtime {
namespace {

using namespace std::chrono_literals;

template <class Condition>
bool runUntil(boost::asio::io_context& io, Condition condition) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!condition() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  return condition();
}

// Found by the half-open scenario of the reliability suite: the last
// renewal before a daemon's jobs ended failed, and with no lease left to
// renew the daemon never claimed again.
TEST(LeaseKeeperTest, ClaimsResumeWhenNoLeaseIsLeftAfterAFailedRenewal) {
  boost::asio::io_context io;
  DatabaseThread db("host=/nonexistent-jobd-test dbname=none", "owner");
  db.start();
  LeaseKeeper keeper(io, db, 20ms);
  int recovered = 0;
  keeper.onRecovered([&] { ++recovered; });
  ClaimedJob job;
  job.id = 1;
  job.attempt = 1;
  job.claimed_at = std::chrono::steady_clock::now();
  keeper.add(job, 30s, std::make_shared<CancellationToken>());
  keeper.start();
  ASSERT_TRUE(runUntil(io, [&] { return !keeper.healthy(); }));
  // Still held: still unhealthy, whatever time passes.
  io.run_for(200ms);
  EXPECT_FALSE(keeper.healthy());
  EXPECT_EQ(recovered, 0);
  keeper.finished(keyOf(job));
  keeper.remove(keyOf(job));
  EXPECT_TRUE(runUntil(io, [&] { return keeper.healthy(); }));
  EXPECT_EQ(recovered, 1);
  keeper.stop();
  db.stop();
}

// The same attempt given to this daemon again while a run of it is still
// here (a release gave the number back): the earlier run is stopped, the
// new one keeps its lease. A run that had returned is left alone.
TEST(LeaseKeeperTest, TheSameAttemptClaimedAgainStopsTheRunStillHere) {
  boost::asio::io_context io;
  DatabaseThread db("host=/nonexistent-jobd-test dbname=none", "owner");
  LeaseKeeper keeper(io, db, 1h);
  ClaimedJob job;
  job.id = 7;
  job.attempt = 1;
  job.claimed_at = std::chrono::steady_clock::now();
  auto first = std::make_shared<CancellationToken>();
  auto second = std::make_shared<CancellationToken>();
  keeper.add(job, 30s, first);
  keeper.add(job, 30s, second);
  EXPECT_TRUE(first->cancelled());
  EXPECT_TRUE(first->leaseExpiredLocally());
  EXPECT_FALSE(second->cancelled());
  EXPECT_TRUE(keeper.holds(keyOf(job)));
  keeper.finished(keyOf(job));
  auto third = std::make_shared<CancellationToken>();
  keeper.add(job, 30s, third);
  EXPECT_FALSE(second->cancelled());  // it had returned
  EXPECT_FALSE(third->cancelled());
}

// Found by the paused-daemons scenario on a loaded machine: the renewals'
// connection opened at the first renewal, a third into the first claimed
// leases, and when it took longer than the rest, other daemons rescued
// jobs still running. The daemon now opens it before it claims anything
// (Controller's preflight), and connect() says whether that worked.
TEST(LeaseKeeperTest, ConnectSaysWhetherTheRenewalsConnectionOpened) {
  boost::asio::io_context io;
  DatabaseThread db("host=/nonexistent-jobd-test dbname=none connect_timeout=30", "owner");
  db.setTimeout(500ms);
  db.start();
  LeaseKeeper keeper(io, db, 1s);
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(keeper.connect());
  EXPECT_LE(std::chrono::steady_clock::now() - started, 5s);
  db.stop();
}

// libpq counts connect_timeout in whole seconds from time(): n gives
// between n - 1 and n. The limit a DatabaseThread passes is one more than
// its deadline and the watchdog's second, rounded up, so that the least
// libpq gives is that (a lease thread's 2 s once gave 1.1 s).
TEST(LeaseKeeperTest, ConnectLimitIsTheDeadlineAndASecondAtLeast) {
  DatabaseThread db("host=/nonexistent-jobd-test dbname=none", "owner");
  db.setTimeout(500ms);
  EXPECT_EQ(db.connectWithin(), 3);
  db.setTimeout(2s);
  EXPECT_EQ(db.connectWithin(), 4);
  db.setTimeout(60s);
  EXPECT_EQ(db.connectWithin(), 62);
}

}  // namespace
}  // namespace jobd::runtime
