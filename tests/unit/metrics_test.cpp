#include "runtime/metrics.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

namespace jobd::runtime {
namespace {

using ::testing::HasSubstr;

// Histogram buckets are cumulative and end with +Inf = _count.
TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Metrics m;
  m.finished({{"noop", "completed", 0.001}, {"noop", "completed", 0.2}});
  m.finished({{"noop", "failed", 4000}});  // above the last bucket
  std::string text = m.render({});
  EXPECT_THAT(text,
              HasSubstr("jobd_job_duration_seconds_bucket{job_type=\"noop\",le=\"0.005\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("jobd_job_duration_seconds_bucket{job_type=\"noop\",le=\"0.25\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("jobd_job_duration_seconds_bucket{job_type=\"noop\",le=\"1800\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("jobd_job_duration_seconds_bucket{job_type=\"noop\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("jobd_job_duration_seconds_count{job_type=\"noop\"} 3\n"));
  EXPECT_THAT(text,
              HasSubstr("jobd_jobs_finished_total{job_type=\"noop\",outcome=\"completed\"} 2\n"));
}

// Job types are free text: quotes, backslashes and newlines are escaped.
TEST(MetricsTest, LabelValuesAreEscaped) {
  Metrics m;
  m.claimed("a\"b\\c\nd", {0.5});
  std::string text = m.render({});
  EXPECT_THAT(text, HasSubstr("jobd_jobs_claimed_total{job_type=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

// Gauges come from the io thread at the scrape; the ready estimate from
// the last periodic count.
TEST(MetricsTest, GaugesAndReadyEstimate) {
  Metrics m;
  m.setReady({{"noop", 12}});
  Metrics::Gauges g;
  g.running = {{"noop", 3}};
  g.database_up = true;
  g.draining = true;
  std::string text = m.render(g);
  EXPECT_THAT(text, HasSubstr("jobd_jobs_ready{job_type=\"noop\"} 12\n"));
  EXPECT_THAT(text, HasSubstr("jobd_jobs_running{job_type=\"noop\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("\njobd_database_up 1\n"));
  EXPECT_THAT(text, HasSubstr("\njobd_listener_up 0\n"));
  EXPECT_THAT(text, HasSubstr("\njobd_up 0\n"));
}

// Claims, outcomes and scrapes from several threads at once lose no count
// (and, under ThreadSanitizer, race on nothing).
TEST(MetricsTest, ConcurrentCountersAndScrapes) {
  Metrics m;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 1000; ++i) {
        m.claimed("noop", {0.01, 0.02});
        m.finished({{"noop", "completed", 0.001}, {"noop", "retry", 0.002}});
      }
    });
  }
  threads.emplace_back([&m] {
    for (int i = 0; i < 200; ++i) {
      EXPECT_FALSE(m.render({}).empty());
      m.setReady({{"noop", i}});
    }
  });
  for (auto& thread : threads) {
    thread.join();
  }
  std::string text = m.render({});
  EXPECT_THAT(text, HasSubstr("jobd_jobs_claimed_total{job_type=\"noop\"} 6000\n"));
  EXPECT_THAT(text,
              HasSubstr("jobd_jobs_finished_total{job_type=\"noop\",outcome=\"retry\"} 3000\n"));
  EXPECT_THAT(text, HasSubstr("jobd_job_duration_seconds_count{job_type=\"noop\"} 6000\n"));
}

}  // namespace
}  // namespace jobd::runtime
