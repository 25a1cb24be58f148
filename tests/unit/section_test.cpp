// A served section's timers (runtime/section.hpp): the earliest wake-up
// wins, and a freed slot gathers others for at most kGather before the
// claim goes. Driven by a real io_context, in milliseconds.
#include "runtime/section.hpp"

#include <gtest/gtest.h>

#include <chrono>

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

}  // namespace
}  // namespace jobd::runtime
