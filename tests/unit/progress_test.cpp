// Progress reports (runtime/progress.hpp): how a report is checked, and how
// the throttle turns any number of reports into at most one flush per
// interval per attempt, with what is left handed back when the job ends.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/job_errors.hpp"
#include "runtime/progress.hpp"

namespace jobd::runtime {
namespace {

using namespace std::chrono_literals;

ProgressUpdate percent(double value) {
  ProgressUpdate update;
  update.percent = value;
  return update;
}

TEST(ProgressTest, ReportsAreCheckedAndNormalised) {
  ProgressUpdate update;
  update.percent = 140;
  update.message = std::string(300, 'x') + "\xff";
  update.checkpoint = R"( { "a" : [1, 2] } )";
  EXPECT_EQ(checkReport(update, 100), std::nullopt);
  EXPECT_EQ(*update.percent, 100);
  EXPECT_EQ(update.message->size(), kMaxProgressMessage);
  EXPECT_EQ(*update.checkpoint, R"({"a":[1,2]})");

  // The message is cut at a character, not inside one.
  update = {};
  update.message = std::string(199, 'x') + "\xc3\xa9\xc3\xa9";
  EXPECT_EQ(checkReport(update, 100), std::nullopt);
  EXPECT_EQ(*update.message, std::string(199, 'x') + "\xc3\xa9");

  auto refusal = [](ProgressUpdate u, std::size_t max) {
    auto refused = checkReport(u, max);
    return refused ? refused->type : std::string("accepted");
  };
  EXPECT_EQ(refusal(percent(std::nan("")), 100), "ProgressNotANumber");
  ProgressUpdate bad;
  bad.checkpoint = "{not json";
  EXPECT_EQ(refusal(bad, 100), "CheckpointNotJson");
  bad.checkpoint = R"({"a": "\u0000"})";
  EXPECT_EQ(refusal(bad, 100), "CheckpointNotStorable");
  bad.checkpoint = R"({"a": "0123456789"})";
  EXPECT_EQ(refusal(bad, 10), "CheckpointTooLarge");
  EXPECT_EQ(refusal(bad, 100), "accepted");
}

TEST(ProgressTest, ReportsReadFromJsonLines) {
  ProgressUpdate update = progressFromJson(
      nlohmann::json::parse(R"({"percent": 5, "message": "m", "checkpoint": {"k": 1}})"));
  EXPECT_EQ(*update.percent, 5);
  EXPECT_EQ(*update.message, "m");
  EXPECT_EQ(*update.checkpoint, R"({"k":1})");
  // null: not reported (a sql job's jobd.report_progress without a message).
  update = progressFromJson(nlohmann::json::parse(R"({"percent": 5, "message": null})"));
  EXPECT_FALSE(update.message.has_value());
  EXPECT_THROW(progressFromJson(nlohmann::json::parse("[1]")), std::invalid_argument);
  EXPECT_THROW(progressFromJson(nlohmann::json::parse(R"({"percent": "5"})")),
               std::invalid_argument);
  EXPECT_THROW(progressFromJson(nlohmann::json::parse(R"({"pecrent": 5})")), std::invalid_argument);
}

TEST(ProgressTest, AContextRefusesABadCheckpointWithAnOops) {
  ClaimedJob job;
  job.max_result = 8;
  job.checkpoint = R"({"at": 3})";
  nlohmann::json data;
  CancellationToken token;
  std::vector<ProgressUpdate> seen;
  JobContext context{
      job, data,         nullptr,      token,
      {},  std::nullopt, std::nullopt, [&](ProgressUpdate u) { seen.push_back(std::move(u)); }};
  EXPECT_EQ(context.checkpoint()->at("at"), 3);
  context.reportProgress(50, "half");
  context.saveCheckpoint({{"at", 4}});
  try {
    context.saveCheckpoint({{"at", "far too long"}});
    FAIL() << "a checkpoint over max_payload was taken";
  } catch (const OopsError& e) {
    EXPECT_EQ(e.typeName(), "CheckpointTooLarge");
  }
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(*seen[0].message, "half");
  EXPECT_EQ(*seen[1].checkpoint, R"({"at":4})");
}

// Records every flush, with when it came.
struct Flushes {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::vector<ProgressReport>>> seen;

  ProgressThrottle::Flush sink() {
    return [this](std::vector<ProgressReport> reports) {
      std::lock_guard<std::mutex> lock(mutex);
      seen.emplace_back(std::chrono::steady_clock::now(), std::move(reports));
      changed.notify_all();
    };
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return seen.size();
  }
  bool waitFor(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return seen.size() >= n; });
  }
};

TEST(ProgressTest, ManyReportsMakeOneFlushPerInterval) {
  Flushes flushes;
  ProgressThrottle throttle(flushes.sink(), 200ms);
  const AttemptKey key{7, 1};
  auto start = std::chrono::steady_clock::now();
  int reports = 0;
  while (std::chrono::steady_clock::now() - start < 1000ms) {
    throttle.report(key, "t", percent(reports++ % 100));
  }
  // The first at once, then one per 200 ms: 5 or 6 in a second, whatever
  // the number of reports.
  EXPECT_GT(reports, 1000);
  EXPECT_GE(flushes.count(), 3U);
  EXPECT_LE(flushes.count(), 6U);
  std::lock_guard<std::mutex> lock(flushes.mutex);
  for (std::size_t i = 1; i < flushes.seen.size(); ++i) {
    EXPECT_GE(flushes.seen[i].first - flushes.seen[i - 1].first, 150ms);
    ASSERT_EQ(flushes.seen[i].second.size(), 1U);
    EXPECT_EQ(flushes.seen[i].second[0].key, key);
  }
}

TEST(ProgressTest, TakeHandsBackWhatWasNotFlushedAndMergesReports) {
  Flushes flushes;
  ProgressThrottle throttle(flushes.sink(), 10s);
  const AttemptKey key{1, 1};
  throttle.report(key, "t", percent(10));  // flushed at once
  ASSERT_TRUE(flushes.waitFor(1, 5s));
  ProgressUpdate checkpoint;
  checkpoint.checkpoint = "1";
  throttle.report(key, "t", checkpoint);
  throttle.report(key, "t", percent(20));  // keeps the checkpoint
  EXPECT_EQ(throttle.latest().at(key).percent, 20);
  EXPECT_EQ(throttle.latest().at(key).job_type, "t");
  std::optional<ProgressUpdate> left = throttle.take(key, false);
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(*left->percent, 20);
  EXPECT_EQ(*left->checkpoint, "1");
  EXPECT_FALSE(throttle.take(key, false).has_value());  // nothing new since
  // Kept (take without forget): a later report waits for the interval.
  throttle.report(key, "t", percent(30));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(flushes.count(), 1U);
  EXPECT_EQ(*throttle.take(key)->percent, 30);
  EXPECT_TRUE(throttle.latest().empty());
  // Another attempt is flushed on its own, at once.
  throttle.report({1, 2}, "t", percent(1));
  ASSERT_TRUE(flushes.waitFor(2, 5s));
}

// Worker threads report while the io thread takes what jobs left as they
// end: every attempt's last report is flushed or taken, never lost (also
// under ThreadSanitizer).
TEST(ProgressTest, ConcurrentReportsAndTakesLoseNoLastReport) {
  Flushes flushes;
  constexpr int kThreads = 4;
  constexpr int kReports = 5000;
  std::vector<std::optional<ProgressUpdate>> taken(kThreads);
  {
    ProgressThrottle throttle(flushes.sink(), 5ms);
    std::vector<std::thread> workers;
    workers.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 1; i <= kReports; ++i) {
          throttle.report({t, 1}, "t", percent(i / 100.0));
        }
        taken[t] = throttle.take({t, 1});
      });
    }
    for (std::thread& worker : workers) {
      worker.join();
    }
    EXPECT_TRUE(throttle.latest().empty());
  }
  std::lock_guard<std::mutex> lock(flushes.mutex);
  for (int t = 0; t < kThreads; ++t) {
    double last = -1;
    for (const auto& [at, reports] : flushes.seen) {
      for (const ProgressReport& report : reports) {
        if (report.key.id == t) {
          last = *report.update.percent;
        }
      }
    }
    if (taken[t]) {
      last = *taken[t]->percent;
    }
    EXPECT_EQ(last, kReports / 100.0) << "thread " << t;
  }
}

}  // namespace
}  // namespace jobd::runtime
