// A served section's timers (runtime/section.hpp): the earliest wake-up
// wins, and a freed slot gathers others for at most kGather before the
// claim goes. Driven by a real io_context, in milliseconds.
#include "runtime/section.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "config/config.hpp"

namespace jobd::runtime {
namespace {

using namespace std::chrono_literals;

struct Fixture {
  boost::asio::io_context io;
  int claims = 0;
  Section section{io, [this] { ++claims; }};

  // Runs the loop for `d`, from now.
  void runFor(std::chrono::milliseconds d) {
    if (io.stopped()) {
      io.restart();
    }
    io.run_for(d);
  }
};

TEST(SectionTest, AnEarlierWakeUpReplacesALaterOneAndALaterOneKeepsTheEarlier) {
  Fixture f;
  f.section.wakeAt(60.0);
  f.section.wakeAt(0.0);  // earlier: replaces the minute
  f.runFor(50ms);
  EXPECT_EQ(f.claims, 1);

  f.section.wakeAt(0.02);
  f.section.wakeAt(60.0);  // later: the 20 ms stays
  f.runFor(100ms);
  EXPECT_EQ(f.claims, 2);
}

TEST(SectionTest, ACancelledWakeUpDoesNotClaim) {
  Fixture f;
  f.section.wakeAt(0.0);
  f.section.cancelWake();
  f.runFor(30ms);
  EXPECT_EQ(f.claims, 0);
}

TEST(SectionTest, AFreedSlotGathersOthersOnlyWhileABacklogKeepsSomeBusy) {
  Fixture f;
  // An idle section, or one whose last claim came back short: at once.
  f.section.more = false;
  f.section.running = 3;
  EXPECT_FALSE(f.section.gathers(1, 4));
  f.section.more = true;
  f.section.running = 0;
  EXPECT_FALSE(f.section.gathers(4, 4));
  // A backlog and busy slots: the claim waits, once, and the timer claims.
  f.section.running = 3;
  EXPECT_TRUE(f.section.gathers(1, 4));
  EXPECT_TRUE(f.section.gathers(1, 4));  // a second freed slot joins the same wait
  f.runFor(30ms);
  EXPECT_EQ(f.claims, 1);
  EXPECT_FALSE(f.section.gathers(2, 4));  // the wait is over: the claim goes
  EXPECT_TRUE(f.section.gathers(1, 4));   // and the next freed slot waits again
}

// Claiming ahead (Producer): how many jobs past the free slots a claim
// may take is what the slots finish in two claims' time, at most
// claim_ahead; none without the key, a backlog or measurements, and none
// while long jobs held the queued ones past their hold.
TEST(SectionTest, ClaimsAheadWhatTheSlotsFinishInTwoClaimsAtMostClaimAhead) {
  Fixture f;
  config::SectionConfig config;
  config.claim_ahead = 100;
  f.section.config = &config;
  f.section.more = true;
  EXPECT_EQ(f.section.ahead(8), 0);  // nothing measured yet
  f.section.mean_claim = 0.002;
  f.section.mean_run = 0.001;
  EXPECT_EQ(f.section.ahead(8), 32);  // 2 x 8 slots x 2 ms / 1 ms
  f.section.mean_run = 0.000001;
  EXPECT_EQ(f.section.ahead(8), 100);  // short jobs: the cap
  f.section.mean_run = 0.003;
  EXPECT_EQ(f.section.ahead(8), 10);  // 2 x 8 x 2 ms / 3 ms = 10.7, rounded down
  f.section.mean_run = 0.05;
  EXPECT_EQ(f.section.ahead(8), 0);  // 0.64 jobs finish in two claims: nothing
  f.section.mean_run = 0.9;
  f.section.mean_claim = 1.0;
  // 17 would finish in two (slow) claims, but slots free 112 ms apart: a
  // job would wait near its hold.
  EXPECT_EQ(f.section.ahead(8), 0);
  f.section.mean_claim = 0.002;
  f.section.ahead_held_back = true;
  EXPECT_EQ(f.section.ahead(8), 0);
  f.section.ahead_held_back = false;
  f.section.more = false;  // no backlog
  EXPECT_EQ(f.section.ahead(8), 0);
  f.section.more = true;
  config.claim_ahead = 0;  // not asked for
  f.section.mean_run = 0.000001;
  EXPECT_EQ(f.section.ahead(8), 0);
}

}  // namespace
}  // namespace jobd::runtime
