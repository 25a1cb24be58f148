// The dashboard's shared HTML pieces (http/html.hpp) and the pages past the
// front one (typePage, jobsPage, searchPage): times as people read them,
// query strings, and escaping.
#include "http/html.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "http/charts.hpp"
#include "http/pages.hpp"
#include "http/routes.hpp"

namespace jobd::http {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// As to_jsonb writes a timestamptz with TimeZone UTC, and with offsets.
TEST(HtmlTest, TimestampsAreReadExactly) {
  EXPECT_EQ(html::epochMicros("1970-01-01T00:00:00+00:00"), 0);
  EXPECT_EQ(html::epochMicros("2026-12-04T22:15:12.373325+00:00"), 1796422512373325LL);
  EXPECT_EQ(html::epochMicros("2026-12-04T22:15:12.3+00:00"), 1796422512300000LL);
  EXPECT_EQ(html::epochMicros("2026-12-04T23:15:12.373325+01:00"), 1796422512373325LL);
  EXPECT_EQ(html::epochMicros("2026-12-04T16:45:12.373325-05:30"), 1796422512373325LL);
  EXPECT_EQ(html::epochMicros("2026-12-04T22:15:12Z"), 1796422512000000LL);
  EXPECT_EQ(html::epochMicros("infinity"), std::nullopt);
  EXPECT_EQ(html::epochMicros("2026-12-04"), std::nullopt);
  EXPECT_EQ(html::epochMicros("2026-12-04T22:15:12 garbage"), std::nullopt);
  EXPECT_EQ(html::epochMicros("2026-12-04 22:15:12+00"), 1796422512000000LL);
  EXPECT_EQ(html::epochMicros("2026-12-04 23:45:12+0130"), 1796422512000000LL);
  // A log line that starts with a time is not one.
  EXPECT_EQ(html::epochMicros("2026-12-04 10:00:00+00 connection refused"), std::nullopt);
  EXPECT_EQ(html::epochMicros("2026-12-04 10:00:00+00:00Z"), std::nullopt);
  EXPECT_EQ(html::epochMicros(nullptr), std::nullopt);
  EXPECT_EQ(html::epochMicros(5), std::nullopt);
}

TEST(HtmlTest, DurationsInHumanUnits) {
  EXPECT_EQ(html::duration(0.85), "850 ms");
  EXPECT_EQ(html::duration(0.9996), "1.0 s");
  EXPECT_EQ(html::duration(9.87), "9.9 s");
  EXPECT_EQ(html::duration(12.74), "12 s");
  EXPECT_EQ(html::duration(245), "4 min 5 s");
  EXPECT_EQ(html::duration(240), "4 min");
  EXPECT_EQ(html::duration(3 * 3600 + 12 * 60 + 7), "3 h 12 min");
  EXPECT_EQ(html::duration(2 * 86400 + 4 * 3600), "2 d 4 h");
  EXPECT_EQ(html::duration(30 * 86400), "30 d");
}

// Relative to the page's "now" (the database's), with the exact UTC time
// in the title for hovering; a value that is no timestamp is shown as is.
TEST(HtmlTest, TimesAreRelativeWithTheExactTimeOnHover) {
  const nlohmann::json now = "2026-12-04T22:15:12.373325+00:00";
  std::string three_min_ago = html::when("2026-12-04T22:12:10.000000+00:00", now);
  EXPECT_THAT(three_min_ago, HasSubstr(">3 min ago</time>"));
  EXPECT_THAT(three_min_ago, HasSubstr("title=\"2026-12-04 22:12:10.000 UTC\""));
  EXPECT_THAT(three_min_ago, HasSubstr("datetime=\"2026-12-04T22:12:10.000000+00:00\""));
  EXPECT_THAT(html::when("2026-12-05T00:20:00+00:00", now), HasSubstr(">in 2 h</time>"));
  EXPECT_THAT(html::when("2026-12-04T22:15:12.9+00:00", now), HasSubstr(">now</time>"));
  EXPECT_THAT(html::when("2026-12-01T22:15:12+00:00", now), HasSubstr(">3 d ago</time>"));
  EXPECT_THAT(html::when("2026-12-04T22:14:40+00:00", now), HasSubstr(">32 s ago</time>"));
  EXPECT_EQ(html::when(nullptr, now), "-");
  EXPECT_EQ(html::when("<soon>", now), "&lt;soon&gt;");
  // Without a "now", the exact time.
  EXPECT_THAT(html::when(now, nullptr), HasSubstr(">2026-12-04 22:15:12.373 UTC</time>"));
}

TEST(HtmlTest, QueryStringsAreDecodedAndLinksEncoded) {
  EXPECT_EQ(queryParam("type=a%20b&status=failed", "type"), "a b");
  EXPECT_EQ(queryParam("type=a+b", "type"), "a b");
  EXPECT_EQ(queryParam("q=%3Cx%3E&q=2", "q"), "<x>");
  EXPECT_EQ(queryParam("q=", "q"), "");
  EXPECT_EQ(queryParam("q", "q"), "");
  EXPECT_EQ(queryParam("qq=1", "q"), std::nullopt);
  EXPECT_EQ(queryParam("q=100%", "q"), "100%");  // a stray % is kept
  EXPECT_EQ(urlEncode("a b/<&>é"), "a%20b%2F%3C%26%3E%C3%A9");
  EXPECT_EQ(html::typeLink("a b<"), "<a href=\"/type/a%20b%3C\">a b&lt;</a>");
}

nlohmann::json typeData() {
  return nlohmann::json::parse(R"({
    "now": "2026-12-04T22:15:12+00:00", "job_type": "report <x>",
    "ready": 7000, "scheduled": 0, "running": 1, "suspended": 2, "failed_last_hour": 300,
    "oldest_ready_age_seconds": 3700.5,
    "running_jobs": [{"id": 41, "attempt": 1, "target": "t<1>", "lease_owner": "h:1:ab",
                      "lease_expires": "2026-12-04T22:15:40+00:00",
                      "date_started": "2026-12-04T22:10:12+00:00"}],
    "failure_groups": [{"error_type": "ValueError", "count": 6667,
                        "last": "2026-12-04T22:15:02+00:00", "latest_job": 990300},
                       {"error_type": "<b>", "count": 1,
                        "last": "2026-12-04T21:15:12+00:00", "latest_job": 12}],
    "failures_read": 6668, "failures_capped": false})");
}

// A type's page: its section's settings in readable units, its counts
// (carried exactly), its running jobs, its failures grouped by error type,
// links to each of its lists; every value escaped.
TEST(HtmlTest, ATypePageShowsItsConfigurationCountsAndFailures) {
  nlohmann::json config = {{"section", "reports"},
                           {"handler", "exec"},
                           {"runner", "process"},
                           {"concurrency", 4},
                           {"timeout_ms", 300000},
                           {"kill_grace_ms", 5000},
                           {"lease_duration_ms", 30000},
                           {"max_retries", 3},
                           {"retry_delay_ms", 600000},
                           {"retry_delay_max_ms", 3600000},
                           {"keep_finished_ms", 2592000000LL},
                           {"claim_ahead", 0},
                           {"limit_key", "target"},
                           {"limit_concurrency", 2},
                           {"limit_rate", 0},
                           {"limit_rate_period_ms", 1000},
                           {"enabled", true}};
  std::string page = typePage(typeData(), config);
  EXPECT_THAT(page, HasSubstr("<tr><th>timeout</th><td>5 min</td></tr>"));
  EXPECT_THAT(page, HasSubstr("<tr><th>lease_duration</th><td>30 s</td></tr>"));
  EXPECT_THAT(page, HasSubstr("<tr><th>retry_delay</th><td>10 min, fixed</td></tr>"));
  EXPECT_THAT(page, HasSubstr("<tr><th>keep_finished</th><td>30 d</td></tr>"));
  EXPECT_THAT(page, HasSubstr("<tr><th>limit</th><td>by target: 2 at a time</td></tr>"));
  EXPECT_THAT(page, HasSubstr("data-field=\"ready\" data-value=\"7000\">7,000</td>"));
  EXPECT_THAT(page, HasSubstr("data-field=\"suspended\" data-value=\"2\">2</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"n\">1 h 1 min</td>"));  // oldest ready
  EXPECT_THAT(page, HasSubstr("data-error-type=\"ValueError\" data-value=\"6667\">6,667</td>"));
  EXPECT_THAT(page, HasSubstr("<td>&lt;b&gt;</td>"));
  EXPECT_THAT(page, Not(HasSubstr("<b>")));
  EXPECT_THAT(page, HasSubstr("<td>t&lt;1&gt;</td>"));
  EXPECT_THAT(page, HasSubstr(">5 min ago</time>"));  // the running job started
  EXPECT_THAT(page, HasSubstr(">in 28 s</time>"));    // its lease
  EXPECT_THAT(page, HasSubstr("href=\"/jobs?type=report%20%3Cx%3E&amp;status=failed\""));
  EXPECT_THAT(page, HasSubstr("href=\"/job/990300\""));
  EXPECT_THAT(page, HasSubstr("<title>job type report &lt;x&gt; - jobd</title>"));
  EXPECT_THAT(page, HasSubstr("name=\"viewport\""));
  EXPECT_THAT(typePage(typeData(), nullptr),
              HasSubstr("No section of this daemon serves this job type."));
}

// A list's page links to the next page by its cursor, and back to the
// first; the last page has no next link.
TEST(HtmlTest, AListPageLinksToTheNextPageByItsCursor) {
  nlohmann::json page = nlohmann::json::parse(R"({
    "now": "2026-12-04T22:15:12+00:00", "next": "1796422500000000.17",
    "jobs": [{"id": 17, "job_type": "mail", "status_name": "FAILED", "priority": 0,
              "target": null, "attempt": 1, "date_created": "2026-12-04T22:14:00+00:00",
              "scheduled_start": null, "date_started": "2026-12-04T22:14:58+00:00",
              "date_finished": "2026-12-04T22:15:00+00:00", "lease_owner": null,
              "error": "ValueError: <bad>"}]})");
  std::string first = jobsPage("mail", "failed", "", page);
  EXPECT_THAT(first, HasSubstr("<b aria-current=\"page\">failed</b>"));
  EXPECT_THAT(
      first, HasSubstr("id=\"next\" rel=\"next\" "
                       "href=\"/jobs?type=mail&amp;status=failed&amp;after=1796422500000000.17\""));
  EXPECT_THAT(first, Not(HasSubstr("first page")));
  EXPECT_THAT(first, HasSubstr("<td>2.0 s</td>"));  // it took
  EXPECT_THAT(first, HasSubstr("<td>ValueError: &lt;bad&gt;</td>"));
  page["next"] = nullptr;
  std::string last = jobsPage("mail", "failed", "1796422500000000.17", page);
  EXPECT_THAT(last, Not(HasSubstr("id=\"next\"")));
  EXPECT_THAT(last, HasSubstr(">first page</a>"));
  page["jobs"] = nlohmann::json::array();
  EXPECT_THAT(jobsPage("mail", "failed", "", page), HasSubstr("<p class=\"muted\">none</p>"));
}

TEST(HtmlTest, ASearchPageSaysWhatItFound) {
  EXPECT_THAT(searchPage("", nullptr), HasSubstr("Search for a job by its id"));
  nlohmann::json none = {{"now", "2026-12-04T22:15:12+00:00"}, {"jobs", nlohmann::json::array()}};
  EXPECT_THAT(searchPage("<t>", none), HasSubstr("No job has the id or target \"&lt;t&gt;\"."));
}

// Who acted, for the log line: Basic's user name, cleaned to one word.
TEST(HtmlTest, TheOperatorIsNamedByTheirUserName) {
  EXPECT_EQ(operatorName("Basic YWxpY2U6czNjcmV0LXB3"), "alice");    // alice:s3cret-pw
  EXPECT_EQ(operatorName("basic   YWxpY2U6czNjcmV0LXB3"), "alice");  // any case, spaces
  EXPECT_EQ(operatorName("Basic OnMzY3JldC1wdw=="), "operator");     // :s3cret-pw
  EXPECT_EQ(operatorName("Basic YSBiPSJjIjpw"), "ab=c");             // a b="c":p
  EXPECT_EQ(operatorName("Bearer s3cret-pw"), "token");
  EXPECT_TRUE(sameSecret("abc", "abc"));
  EXPECT_FALSE(sameSecret("abd", "abc"));
  EXPECT_FALSE(sameSecret("ab", "abc"));
  EXPECT_FALSE(sameSecret("abcd", "abc"));
}

// The actions a job's status allows (SPEC §4.3), and the paths that name
// them.
TEST(HtmlTest, ActionsFollowTheJobsStatus) {
  auto allowed = [](int status) { return allowedActions({{"status", status}}).dump(); };
  EXPECT_EQ(allowed(0), R"(["retry","suspend","cancel"])");  // WAITING
  EXPECT_EQ(allowed(1), R"(["suspend","cancel"])");          // RUNNING
  EXPECT_EQ(allowed(3), R"(["retry"])");                     // FAILED
  EXPECT_EQ(allowed(4), R"(["resume","cancel"])");           // SUSPENDED
  EXPECT_EQ(allowed(9), "[]");
  EXPECT_TRUE(isActionPath("/job/42/cancel"));
  EXPECT_FALSE(isActionPath("/job/42/delete"));
  EXPECT_FALSE(isActionPath("/job//cancel"));
  EXPECT_FALSE(isActionPath("/job/4x/cancel"));
  EXPECT_FALSE(isActionPath("/job/42"));
  nlohmann::json job = {
      {"id", 42}, {"job_type", "t"}, {"status_name", "WAITING"}, {"actions", {"retry", "cancel"}}};
  std::string page = actionPage(job, "cancel", "tok\"en");
  EXPECT_THAT(page, HasSubstr("name=\"csrf\" value=\"tok&quot;en\""));
  EXPECT_THAT(page, HasSubstr("name=\"reason\""));
  EXPECT_THAT(actionPage(job, "resume", "t"), HasSubstr("id=\"refused\""));
  EXPECT_THAT(actionPage(job, "resume", "t"), Not(HasSubstr("method=\"post\"")));
}

}  // namespace
}  // namespace jobd::http

namespace jobd::http {
namespace {

// A chart keeps the numbers it draws; a minute without one breaks the
// line; the top is a round number at or above the largest value.
TEST(ChartTest, APlotKeepsItsNumbersAndBreaksWhereThereAreNone) {
  std::string svg =
      charts::lineChart("c", "jobs <per> minute", 1700000040,
                        {{"completed", "#000", {0.0, 3.0, std::nullopt, 7.0, 2.5}}}, "");
  EXPECT_THAT(svg, ::testing::HasSubstr("data-series=\"completed\" data-values=\"0,3,,7,2.500\""));
  EXPECT_THAT(svg, ::testing::HasSubstr("data-first-minute=\"1700000040\" data-top=\"10\""));
  EXPECT_THAT(svg, ::testing::HasSubstr("jobs &lt;per&gt; minute"));
  // Two pieces: minutes 0-1 and 3-4; x in steps of 150 over 600; y from
  // 100 (zero) to 22 (the top, 10).
  EXPECT_THAT(svg, ::testing::HasSubstr("<polyline points=\"0.0,100.0 150.0,76.6\"/>"));
  EXPECT_THAT(svg, ::testing::HasSubstr("<polyline points=\"450.0,45.4 600.0,80.5\"/>"));
  // One value alone is a dot.
  std::string dot =
      charts::lineChart("d", "ready", 0, {{"ready", "#000", {std::nullopt, 1.0}}}, "");
  EXPECT_THAT(dot, ::testing::HasSubstr("<polyline points=\"600.0,22.0 600.0,22.0\"/>"));
}

TEST(ChartTest, TrendsCountOnlyTheMinutesRolledUp) {
  // Minutes 60, 120, 180; rolled up from 60 to before 180: the last has no
  // counts yet, the middle (no row) had no finished job.
  nlohmann::json trends = {
      {"minutes", 3},
      {"first", 60},
      {"since", 60},
      {"through", 180},
      {"rows", {{60, 4, 1, nullptr, 0.5, 2.25}, {180, 0, 0, 12, nullptr, nullptr}}}};
  std::string html = charts::trendCharts(trends);
  EXPECT_THAT(html, ::testing::HasSubstr("data-series=\"completed\" data-values=\"4,0,\""));
  EXPECT_THAT(html, ::testing::HasSubstr("data-series=\"failed\" data-values=\"1,0,\""));
  EXPECT_THAT(html, ::testing::HasSubstr("data-series=\"ready\" data-values=\",,12\""));
  EXPECT_THAT(html, ::testing::HasSubstr("data-series=\"p95\" data-values=\"2.250,,\""));
  EXPECT_EQ(charts::trendCharts(nlohmann::json::object()), "");
}

}  // namespace
}  // namespace jobd::http
