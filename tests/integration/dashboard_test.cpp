// The dashboard and `jobd status` against a big table: 1,000,000 finished
// jobs, 10,000 waiting, a few running, failures with OOPS reports. The page
// is loaded in headless Chromium (Debian's `chromium`), whose DOM must show
// the numbers the database holds; a screenshot is kept under the build
// directory's test-artifacts/.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <tuple>

#include "chromium.hpp"
#include "daemon.hpp"
#include "http_client.hpp"

namespace jobd {
namespace {

using testing::Chromium;
using testing::Daemon;
using ::testing::HasSubstr;
using testing::TestDatabase;

constexpr const char* kBigTable = R"sql(
INSERT INTO jobd.job (job_type, status, attempt_count, date_created, date_started, date_finished)
SELECT (ARRAY['noop', 'report', 'mail'])[1 + i % 3], 2, 1,
       now() - interval '3 days' + i * interval '200 ms', now() - interval '3 days' + i * interval '200 ms',
       now() - interval '3 days' + i * interval '200 ms' + interval '1 s'
  FROM generate_series(1, 990000) AS i;
INSERT INTO jobd.job (job_type, status, attempt_count, date_created, date_started, date_finished, log)
SELECT CASE WHEN i % 3 = 0 THEN 'mail' ELSE 'report' END, 3, 1, now() - interval '1 day',
       now() - interval '1 day',
       CASE WHEN i <= 300 THEN now() - i * interval '10 s'
            ELSE now() - interval '5 hours' - i * interval '1 s' END,
       'ValueError: bad input ' || i
  FROM generate_series(1, 10000) AS i;
INSERT INTO jobd.oops (id, reporter, job_id, job_type, attempt, type, value, traceback, vars)
SELECT 'OOPS-dash' || id, 'JOBD-' || job_type, id, job_type, 1, 'ValueError', 'bad input ' || id,
       E'Traceback (most recent call last):\n  File "report.py", line 42, in run\nValueError: bad input '
         || id,
       jsonb_build_object('job_id', id::text, 'customer', 'c-' || id)
  FROM jobd.job WHERE status = 3 ORDER BY date_finished DESC LIMIT 50;
INSERT INTO jobd.job (job_type, json_data)
SELECT 'report', jsonb_build_object('n', i) FROM generate_series(1, 7000) AS i;
INSERT INTO jobd.job (job_type, scheduled_start)
SELECT 'mail', now() - interval '10 minutes' FROM generate_series(1, 2000);
INSERT INTO jobd.job (job_type, scheduled_start)
SELECT 'mail', now() + interval '1 day' FROM generate_series(1, 1000);
INSERT INTO jobd.job (job_type, status, attempt_count)
SELECT 'report', 4, 1 FROM generate_series(1, 120);
INSERT INTO jobd.job (job_type, status, attempt_count, date_started, date_finished)
SELECT 'report', 2, 1, now() - interval '2 minutes', now() - interval '1 minute'
  FROM generate_series(1, 120);
INSERT INTO jobd.job (job_type, status, attempt_count) SELECT 'report', 2, 1 FROM generate_series(1, 60);
INSERT INTO jobd.job (job_type, scheduled_start) SELECT 'mail', 'infinity' FROM generate_series(1, 60);
INSERT INTO jobd.job (job_type, status, attempt_count, date_started, lease_owner, lease_expires)
SELECT 'report', 1, 1, now(), 'other-host:4242:beef', now() + interval '1 hour'
  FROM generate_series(1, 5);
SELECT 1
)sql";

// A type whose jobs finished over the last 50 minutes, for the trends: a
// few each second, latencies (ready to started) of 0 to 59 s, some ready
// at a scheduled_start later than their creation, one in nine FAILED.
constexpr const char* kTrendRows = R"sql(
INSERT INTO jobd.job (job_type, status, attempt_count, date_created, scheduled_start,
                      date_started, date_finished, log)
SELECT 'trend', CASE WHEN i % 9 = 0 THEN 3 ELSE 2 END, 1,
       f - (i % 5) * interval '1 s' - ((i * 7) % 60) * interval '1 s'
         - CASE WHEN i % 11 = 0 THEN interval '5 s' ELSE interval '0 s' END,
       CASE WHEN i % 11 = 0 THEN f - (i % 5) * interval '1 s' - ((i * 7) % 60) * interval '1 s' END,
       f - (i % 5) * interval '1 s', f,
       CASE WHEN i % 9 = 0 THEN 'TimeoutError: slow' END
  FROM generate_series(1, 6000) AS i,
       LATERAL (SELECT now() - interval '10 s' - i * interval '490 ms' - (i % 3) * interval '1 s'
                  AS f) AS t
)sql";

// What the page must show, by (job type, field), from the database.
constexpr const char* kExpected = R"sql(
SELECT jsonb_object_agg(job_type || '/' || field, n)
  FROM (SELECT job_type, 'ready' AS field,
               count(*) FILTER (WHERE status = 0 AND (scheduled_start IS NULL
                                                      OR scheduled_start <= now())) AS n
          FROM jobd.job GROUP BY job_type
        UNION ALL
        SELECT job_type, 'scheduled', count(*) FILTER (WHERE status = 0 AND scheduled_start > now())
          FROM jobd.job GROUP BY job_type
        UNION ALL
        SELECT job_type, 'running', count(*) FILTER (WHERE status = 1)
          FROM jobd.job GROUP BY job_type
        UNION ALL
        SELECT job_type, 'failed_last_hour',
               count(*) FILTER (WHERE status = 3 AND date_finished > now() - interval '1 hour')
          FROM jobd.job GROUP BY job_type) AS e
)sql";

std::string baseUrl(Daemon& daemon) {
  return testing::dashboardUrl(daemon.process());
}

// The ids of the jobs a list or search page shows, in order.
std::vector<std::string> listedIds(const std::string& html) {
  std::vector<std::string> ids;
  std::size_t table = html.find("<table id=\"jobs\">");
  if (table == std::string::npos) {
    return ids;
  }
  std::string rows = html.substr(table, html.find("</table>", table) - table);
  std::regex link(R"re(<tr><td><a href="/job/(\d+)">)re");
  for (auto it = std::sregex_iterator(rows.begin(), rows.end(), link); it != std::sregex_iterator();
       ++it) {
    ids.push_back((*it)[1].str());
  }
  return ids;
}

std::vector<std::string> idsOf(const TestDatabase& db, const std::string& sql) {
  std::vector<std::string> ids;
  std::string all = db.scalar(
      "SELECT string_agg(id::text, ',' ORDER BY n) FROM (SELECT id, "
      "row_number() OVER () AS n FROM (" +
      sql + ") AS q) AS r");
  std::size_t start = 0;
  while (start < all.size()) {
    std::size_t end = all.find(',', start);
    ids.push_back(all.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  return ids;
}

// The first `pages` pages of a list, following each page's next link, as
// a browser would; every page's server time is checked against `budget_ms`.
std::vector<std::string> walkList(const std::string& base, const std::string& path, int pages,
                                  double budget_ms, double& slowest) {
  std::vector<std::string> ids;
  std::string next = path;
  for (int i = 0; i < pages && !next.empty(); ++i) {
    testing::HttpReply reply = testing::httpGet(base + next);
    EXPECT_EQ(reply.status, 200) << next << ": " << reply.body;
    // The page's own cost: an answer over the budget is asked twice more
    // and the quickest counts (another test's daemons share the two cores;
    // CI once saw 54 ms on a page that takes 10-40 on a quiet machine).
    double took = testing::serverTimingTotal(reply);
    std::string times = fmt::format("{:.1f}", took);
    for (int again = 0; again < 2 && took >= budget_ms; ++again) {
      testing::HttpReply retry = testing::httpGet(base + next);
      double retook = testing::serverTimingTotal(retry);  // -1 without the header
      EXPECT_EQ(retry.status, 200) << next;
      EXPECT_GE(retook, 0) << next;
      if (retook < 0) {
        break;
      }
      times += fmt::format(", {:.1f}", retook);
      took = std::min(took, retook);
    }
    slowest = std::max(slowest, took);
    EXPECT_LT(took, budget_ms) << next << " took " << times << " ms";
    std::vector<std::string> page = listedIds(reply.body);
    ids.insert(ids.end(), page.begin(), page.end());
    std::smatch link;
    next.clear();
    if (std::regex_search(reply.body, link,
                          std::regex(R"re(id="next" rel="next" href="([^"]+)")re"))) {
      next = std::regex_replace(link[1].str(), std::regex("&amp;"), "&");
    }
  }
  return ids;
}

// The numbers a chart plots, one a minute ("" for none), from its
// data-values.
std::vector<std::optional<double>> plotted(const std::string& page, const std::string& series) {
  std::smatch found;
  std::vector<std::optional<double>> values;
  if (!std::regex_search(page, found,
                         std::regex("data-series=\"" + series + "\" data-values=\"([^\"]*)\""))) {
    ADD_FAILURE() << "no series " << series;
    return values;
  }
  std::string list = found[1].str() + ",";
  for (std::size_t at = 0, comma; (comma = list.find(',', at)) != std::string::npos;
       at = comma + 1) {
    std::string v = list.substr(at, comma - at);
    values.push_back(v.empty() ? std::nullopt : std::optional(std::stod(v)));
  }
  return values;
}

// The same numbers from jobd.job, for the minutes from `first` (Unix
// seconds): counts and percentiles for the minutes rolled up (from `since`
// to before `through`, as the page says), none for the others.
std::vector<std::optional<double>> expectedSeries(const TestDatabase& db, const std::string& type,
                                                  const std::string& what, std::int64_t first,
                                                  int minutes, const std::string& since,
                                                  const std::string& through) {
  std::string values =
      db.scalar("SELECT string_agg(COALESCE(CASE WHEN g.m >= to_timestamp(" + since +
                ") AND g.m < to_timestamp(" + through + ") THEN COALESCE(x.v, " +
                std::string(what.rfind("count", 0) == 0 ? "0" : "NULL") +
                ")::text END, ''), ',' ORDER BY g.m) FROM generate_series(to_timestamp(" +
                std::to_string(first) + "), to_timestamp(" + std::to_string(first) + ") + " +
                std::to_string(minutes - 1) +
                " * interval '1 minute', interval '1 minute') AS g (m) "
                "LEFT JOIN (SELECT date_trunc('minute', date_finished) AS m, " +
                what + " AS v FROM jobd.job WHERE job_type = '" + type +
                "' AND status IN (2, 3) GROUP BY 1) AS x ON x.m = g.m");
  std::vector<std::optional<double>> out;
  values += ",";
  for (std::size_t at = 0, comma; (comma = values.find(',', at)) != std::string::npos;
       at = comma + 1) {
    std::string v = values.substr(at, comma - at);
    out.push_back(v.empty() ? std::nullopt : std::optional(std::stod(v)));
  }
  return out;
}

// Once a daemon has rolled the finished jobs up (every 10 s), each chart of
// a type's page, over 1 h, 6 h and 24 h, plots the numbers SQL computes
// from jobd.job, minute by minute; its ready line the ready jobs; and the
// page still answers in under 50 ms of server time.
void checkTrends(const TestDatabase& db, const std::string& base, Chromium& chromium) {
  using namespace std::chrono_literals;
  ASSERT_EQ(
      testing::waitForValue(
          db, "SELECT count(*) FROM jobd.job_minute_rolled WHERE job_type = 'trend'", "1", 60s),
      "1");
  // The daemon rolls up ten minutes a call, every 10 s: the test takes the
  // rest of the hour's calls itself rather than wait a minute for them.
  for (int i = 0; i < 10 && db.scalar("SELECT through < date_trunc('minute', now() - interval "
                                      "'5 s') FROM jobd.job_minute_rolled WHERE job_type = "
                                      "'trend'") == "t";
       ++i) {
    db.scalar("SELECT jobd.roll_up_minutes()");
  }
  const std::string latency =
      "extract(epoch FROM date_started - GREATEST(date_created, scheduled_start))";
  for (const auto& [span, minutes] :
       {std::pair{"1h", 60}, std::pair{"6h", 360}, std::pair{"24h", 1440}}) {
    // The page's own cost: the quickest of three answers (another test's
    // daemons share the two cores).
    testing::HttpReply reply;
    double quickest = 1e9;
    for (int i = 0; i < 3; ++i) {
      reply = testing::httpGet(base + "/type/trend?span=" + std::string(span));
      ASSERT_EQ(reply.status, 200) << reply.body;
      quickest = std::min(quickest, testing::serverTimingTotal(reply));
    }
    std::cout << "trends over " << span << ": " << quickest << " ms of server time\n";
    EXPECT_LT(quickest, 50) << span;
    std::smatch first_minute;
    ASSERT_TRUE(
        std::regex_search(reply.body, first_minute,
                          std::regex("id=\"chart-finished\".*?data-first-minute=\"(\\d+)\"")));
    const std::int64_t first = std::stoll(first_minute[1].str());
    std::smatch rolled;
    ASSERT_TRUE(std::regex_search(
        reply.body, rolled,
        std::regex("class=\"charts\" data-since=\"(\\d+)\" data-through=\"(\\d+)\"")));
    struct Expected {
      const char* series;
      std::string sql;
    };
    for (const Expected& e :
         {Expected{"completed", "count(*) FILTER (WHERE status = 2)"},
          Expected{"failed", "count(*) FILTER (WHERE status = 3)"},
          Expected{"p50", "percentile_cont(0.5) WITHIN GROUP (ORDER BY " + latency + ")"},
          Expected{"p95", "percentile_cont(0.95) WITHIN GROUP (ORDER BY " + latency + ")"}}) {
      std::vector<std::optional<double>> shown = plotted(reply.body, e.series);
      std::vector<std::optional<double>> want =
          expectedSeries(db, "trend", e.sql, first, minutes, rolled[1].str(), rolled[2].str());
      ASSERT_EQ(shown.size(), static_cast<std::size_t>(minutes)) << e.series;
      ASSERT_EQ(want.size(), shown.size()) << e.series;
      int points = 0;
      for (std::size_t i = 0; i < shown.size(); ++i) {
        ASSERT_EQ(shown[i].has_value(), want[i].has_value()) << e.series << " minute " << i;
        if (shown[i]) {
          EXPECT_NEAR(*shown[i], *want[i], 0.0005) << e.series << " minute " << i;
          points += *shown[i] > 0 ? 1 : 0;
        }
      }
      // 50 minutes of jobs: the comparison is not of empty charts.
      EXPECT_GE(points, 45) << e.series;
    }
  }
  // The front page's glance at the last hour: the totals of the minutes
  // rolled up in it.
  const std::string front = testing::httpGet(base + "/").body;
  std::size_t row = front.find("href=\"/type/trend\"");
  ASSERT_NE(row, std::string::npos);
  std::smatch glance;
  const std::string rest = front.substr(row, 3000);
  ASSERT_TRUE(std::regex_search(rest, glance,
                                std::regex("data-first-minute=\"(\\d+)\" data-since=\"(\\d+)\" "
                                           "data-through=\"(\\d+)\"><title>last hour: "
                                           "(\\d+) completed, (\\d+) failed")))
      << rest;
  for (const auto& [status, shown] :
       {std::pair{"2", glance[4].str()}, std::pair{"3", glance[5].str()}}) {
    EXPECT_EQ(shown,
              db.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'trend' AND "
                        "status = " +
                        std::string(status) + " AND date_finished >= to_timestamp(GREATEST(" +
                        glance[2].str() + ", " + glance[1].str() +
                        ")) AND date_finished < to_timestamp(" + glance[3].str() + ")"))
        << status;
  }
  // Ready jobs: report's backlog stands at 7,000.
  std::vector<std::optional<double>> ready =
      plotted(testing::httpGet(base + "/type/report").body, "ready");
  std::optional<double> last;
  for (const auto& v : ready) {
    last = v ? v : last;
  }
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, 7000);
  // The charts as a browser draws them, at a desktop's and a phone's width.
  std::filesystem::path artifacts = std::filesystem::path(JOBD_BUILD_DIR) / "test-artifacts";
  for (const auto& [name, path, size] : {std::tuple{"trends.png", "/type/trend", "1400,1100"},
                                         std::tuple{"trends-375px.png", "/type/trend", "375,1400"},
                                         std::tuple{"dashboard-trends.png", "/", "1400,1100"}}) {
    std::filesystem::path shot = artifacts / name;
    std::filesystem::remove(shot);
    testing::ProcessResult r = chromium.run(base + path, 1000, shot.string(), size);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GT(std::filesystem::exists(shot) ? std::filesystem::file_size(shot) : 0, 10000u);
    std::cout << "screenshot: " << shot.string() << "\n";
  }
  EXPECT_EQ(testing::httpGet(base + "/type/trend?span=7d").status, 400);
}

// The pages past the front one, on the million rows: a type's page counts
// its failures by error type as SQL does; each list pages by keyset in its
// index's order, with no row twice or skipped where many rows share one
// time; search finds a target's jobs and sends an id to its page; every
// page answers in under 50 ms of server time.
void checkBrowsePages(const TestDatabase& db, const std::string& base, Chromium& chromium) {
  constexpr double kBudgetMs = 50;
  double slowest = 0;
  testing::ProcessResult type_page = chromium.run(base + "/type/report", 1000);
  ASSERT_EQ(type_page.exit_code, 0) << type_page.err;
  std::string failed_24h = db.scalar(
      "SELECT count(*) FROM jobd.job WHERE job_type = 'report' AND status = 3 "
      "AND date_finished > now() - interval '24 hours'");
  EXPECT_THAT(type_page.out,
              HasSubstr("data-error-type=\"ValueError\" data-value=\"" + failed_24h + "\""));
  EXPECT_THAT(type_page.out, HasSubstr("No section of this daemon serves this job type."));
  EXPECT_THAT(type_page.out, HasSubstr("data-field=\"ready\" data-value=\"7000\""));
  EXPECT_THAT(type_page.out, HasSubstr("data-field=\"running\" data-value=\"5\""));
  EXPECT_THAT(type_page.out, HasSubstr(" ago</time>"));
  for (const char* type : {"report", "mail", "noop", "quiet"}) {
    testing::HttpReply reply = testing::httpGet(base + "/type/" + type);
    EXPECT_EQ(reply.status, 200) << reply.body;
    slowest = std::max(slowest, testing::serverTimingTotal(reply));
    EXPECT_LT(testing::serverTimingTotal(reply), kBudgetMs) << type;
  }
  const std::string quiet = testing::httpGet(base + "/type/quiet").body;
  EXPECT_THAT(quiet, HasSubstr("<tr><th>handler</th><td>noop</td></tr>"));
  EXPECT_THAT(quiet, HasSubstr("<tr><th>timeout</th><td>5 min</td></tr>"));

  struct List {
    const char* path;
    const char* sql;
  };
  const List lists[] = {
      {"/jobs?type=report&status=failed",
       "SELECT id FROM jobd.job WHERE job_type = 'report' AND status = 3 "
       "ORDER BY date_finished DESC, id DESC LIMIT 150"},
      {"/jobs?type=noop&status=completed",
       "SELECT id FROM jobd.job WHERE job_type = 'noop' AND status = 2 "
       "ORDER BY date_finished DESC, id DESC LIMIT 150"},
      // 120 finished at one time, the newest; 60 with no date_finished
      // (inserted by hand) are not listed.
      {"/jobs?type=report&status=completed",
       "SELECT id FROM jobd.job WHERE job_type = 'report' AND status = 2 AND date_finished IS NOT "
       "NULL ORDER BY date_finished DESC, id DESC LIMIT 150"},
      {"/jobs?type=report&status=waiting",
       "SELECT id FROM jobd.job WHERE job_type = 'report' AND status = 0 AND scheduled_start IS "
       "NULL ORDER BY behind, priority, id LIMIT 150"},
      // 2,000 rows at one time and 1,000 at another: the pages go on by id.
      {"/jobs?type=mail&status=scheduled",
       "SELECT id FROM jobd.job WHERE job_type = 'mail' AND status = 0 AND scheduled_start IS "
       "NOT NULL ORDER BY scheduled_start, id LIMIT 150"},
      {"/jobs?type=report&status=running",
       "SELECT id FROM jobd.job WHERE job_type = 'report' AND status = 1 ORDER BY id"},
      {"/jobs?type=report&status=suspended",
       "SELECT id FROM jobd.job WHERE job_type = 'report' AND status = 4 ORDER BY id LIMIT 150"},
  };
  for (const List& list : lists) {
    EXPECT_EQ(walkList(base, list.path, 3, kBudgetMs, slowest), idsOf(db, list.sql)) << list.path;
  }
  auto encoded = [](const std::string& text) {
    std::string out;
    for (unsigned char c : text) {
      out +=
          std::isalnum(c) != 0 ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
    }
    return out;
  };
  // The end of the scheduled list: the last finite times, then the jobs a
  // dependency or a limit holds at 'infinity'.
  std::string near_end = db.scalar(
      "SELECT scheduled_start::text || ',' || id FROM jobd.job WHERE job_type = 'mail' AND "
      "status = 0 AND isfinite(scheduled_start) ORDER BY scheduled_start DESC, id DESC LIMIT 1 "
      "OFFSET 10");
  EXPECT_EQ(walkList(base, "/jobs?type=mail&status=scheduled&after=" + encoded(near_end), 3,
                     kBudgetMs, slowest),
            idsOf(db,
                  "SELECT id FROM jobd.job WHERE job_type = 'mail' AND status = 0 AND "
                  "scheduled_start IS NOT NULL ORDER BY scheduled_start, id OFFSET 2990"));
  // A page deep into the million: as cheap as the first.
  std::string deep = db.scalar(
      "SELECT date_finished::text || ',' || id FROM jobd.job "
      "WHERE job_type = 'noop' AND status = 2 ORDER BY date_finished LIMIT 1 OFFSET 1000");
  EXPECT_EQ(walkList(base, "/jobs?type=noop&status=completed&after=" + encoded(deep), 1, kBudgetMs,
                     slowest)
                .size(),
            50u);
  for (const char* bad :
       {"after=12.x", "after=1%2C2", "after=not%20a%20time%2C5", "after=2026-99-99%2C5"}) {
    EXPECT_EQ(testing::httpGet(base + "/jobs?type=noop&status=completed&" + bad).status, 400)
        << bad;
  }
  EXPECT_EQ(testing::httpGet(base + "/jobs?type=report&status=waiting&after=0%2C99999%2C1").status,
            400);  // past a priority's range
  EXPECT_EQ(testing::httpGet(base + "/jobs?type=noop&status=done").status, 400);

  // Search: an id goes to the job's page; a target lists its jobs, waiting
  // and finished.
  testing::HttpReply by_id = testing::httpGet(base + "/search?q=+42+");
  EXPECT_EQ(by_id.status, 303);
  EXPECT_EQ(by_id.headers["location"], "/job/42");
  // A number that is no job's id may be a target.
  db.scalar("SELECT jobd.enqueue('mail', target => '987654321')");
  testing::HttpReply numeric = testing::httpGet(base + "/search?q=987654321");
  EXPECT_EQ(numeric.status, 200);
  EXPECT_EQ(listedIds(numeric.body).size(), 1u) << numeric.body;
  db.scalar(
      "INSERT INTO jobd.job (job_type, status, target, date_started, date_finished) "
      "SELECT 'report', 2, 'acct <7>', now() - i * interval '1 min', now() - i * interval '1 min' "
      "FROM generate_series(1, 3) AS i; SELECT jobd.enqueue('mail', target => 'acct <7>')");
  testing::HttpReply found = testing::httpGet(base + "/search?q=acct+%3C7%3E");
  EXPECT_EQ(found.status, 200);
  EXPECT_LT(testing::serverTimingTotal(found), kBudgetMs);
  EXPECT_EQ(listedIds(found.body).size(), 4u) << found.body;
  EXPECT_THAT(found.body, HasSubstr("The jobs of target \"acct &lt;7&gt;\""));
  EXPECT_THAT(testing::httpGet(base + "/search?q=nobody").body,
              HasSubstr("No job has the id or target \"nobody\"."));
  std::cout << "slowest server time of the type, list and search pages: " << slowest << " ms\n";

  // Screenshots of each kind of page (the type page and two lists, one at
  // a phone's width; a search; a job).
  std::filesystem::path artifacts = std::filesystem::path(JOBD_BUILD_DIR) / "test-artifacts";
  for (const auto& [name, url] :
       {std::pair{"type.png", base + "/type/report"},
        std::pair{"failed-375px.png", base + "/jobs?type=report&status=failed"},
        std::pair{"scheduled.png", base + "/jobs?type=mail&status=scheduled"},
        std::pair{"search.png", base + "/search?q=acct+%3C7%3E"},
        std::pair{"job.png", base + "/job/" +
                                 db.scalar("SELECT min(id) FROM jobd.job WHERE "
                                           "status = 3 AND job_type = 'report'")}}) {
    std::filesystem::path shot = artifacts / name;
    std::filesystem::remove(shot);
    testing::ProcessResult r =
        chromium.run(url, 1000, shot.string(),
                     std::string(name).find("375") != std::string::npos ? "375,800" : "1400,1100");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GT(std::filesystem::exists(shot) ? std::filesystem::file_size(shot) : 0, 10000u);
    std::cout << "screenshot: " << shot.string() << "\n";
  }
}

// A million finished jobs: the dashboard in Chromium shows the database's
// numbers, refreshes itself, links to an OOPS with its traceback, answers
// in under 50 ms of server time; `jobd status` answers in under a second.
TEST(DashboardTest, AMillionFinishedJobsInChromium) {
  TestDatabase db;
  db.scalar(kBigTable);
  db.scalar(kTrendRows);
  {
    auto conn = db.connect();
    pqxx::nontransaction(*conn).exec("VACUUM ANALYZE jobd.job");  // as autovacuum would
  }
  // A daemon that serves a type no row has, so the numbers stay still.
  Daemon daemon(db, "[jobd]\ndashboard_listen: 127.0.0.1:0\n[quiet]\nhandler: noop\n");
  ASSERT_TRUE(daemon.waitReady());
  std::string base = baseUrl(daemon);
  nlohmann::json expected = nlohmann::json::parse(db.scalar(kExpected));
  // A pause is shown with who, why and until when (schema 14).
  db.scalar("SELECT jobd.pause('mail', 'relay-2', reason => 'relay <down>', paused_by => 'alice')");
  // So is a schedule, paused (no daemon adds to the counts), with its last
  // job (schema 15).
  const std::string last_job = db.scalar("SELECT min(id) FROM jobd.job WHERE status = 2");
  db.scalar(
      "INSERT INTO jobd.schedule (name, job_type, spec, time_zone, paused, last_job, last_fire) "
      "VALUES ('nightly <eu>', 'report', '30 2 * * *', 'Europe/London', true, " +
      last_job + ", '2026-12-06 02:30:00Z') RETURNING 1");

  Chromium chromium;
  testing::ProcessResult page = chromium.run(base + "/", 5000);
  ASSERT_EQ(page.exit_code, 0) << page.err;
  const std::string& dom = page.out;
  std::map<std::string, long long> shown;
  std::regex cell(R"re(data-job-type="([^"]+)" data-field="([^"]+)" data-value="(\d+)")re");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), cell); it != std::sregex_iterator();
       ++it) {
    shown[(*it)[1].str() + "/" + (*it)[2].str()] = std::stoll((*it)[3].str());
  }
  // noop has only COMPLETED rows, and no section serves it: not listed.
  EXPECT_EQ(shown.count("noop/ready"), 0u);
  for (const char* type : {"report", "mail", "quiet"}) {
    for (const char* field : {"ready", "scheduled", "running", "failed_last_hour"}) {
      std::string key = std::string(type) + "/" + field;
      long long want = expected.contains(key) ? expected[key].get<long long>() : 0;
      ASSERT_TRUE(shown.count(key)) << key << " is not on the page:\n" << dom;
      EXPECT_EQ(shown[key], want) << key;
    }
  }
  EXPECT_EQ(shown["report/ready"], 7000);
  EXPECT_EQ(shown["mail/ready"], 2000);
  EXPECT_EQ(shown["mail/scheduled"], 1000 + 60);  // and 60 held at 'infinity'
  EXPECT_EQ(shown["report/running"], 5);
  EXPECT_EQ(shown["report/failed_last_hour"] + shown["mail/failed_last_hour"], 300);
  // The script fetched the live part and swapped it in: no full reload,
  // and nothing on the page moved.
  EXPECT_THAT(dom, HasSubstr("<span id=\"state\" class=\"muted\">live</span>"));
  EXPECT_THAT(dom, HasSubstr("<body data-layout-shift=\"0.0\">"));
  EXPECT_THAT(dom, HasSubstr("other-host:4242:beef"));  // the running jobs' daemon
  EXPECT_THAT(dom, HasSubstr("<table id=\"paused\">"));
  EXPECT_THAT(dom, HasSubstr("<td>mail</td><td>relay-2</td><td>alice</td>"));
  EXPECT_THAT(dom, HasSubstr("<td>until unpaused</td><td>relay &lt;down&gt;</td>"));
  EXPECT_THAT(dom, HasSubstr("<table id=\"schedules\">"));
  EXPECT_THAT(dom, HasSubstr("<td>nightly &lt;eu&gt; <b>paused</b></td><td>report</td><td>30 2 * "
                             "* * (Europe/London)</td>"));
  EXPECT_THAT(dom, HasSubstr("<a href=\"/job/" + last_job + "\">" + last_job +
                             "</a> COMPLETED</td><td class=\"n\">0</td>"));
  // The live daemon, idle, by its owner name <host>:<pid>:<hex>.
  EXPECT_THAT(dom, HasSubstr(":" + std::to_string(daemon.process().pid()) + ":"));

  // The latest failure's OOPS is one click away.
  std::smatch link;
  ASSERT_TRUE(std::regex_search(dom, link, std::regex(R"re(href="(/oops/(OOPS-[^"]+))")re")));
  std::string newest = db.scalar(
      "SELECT o.id FROM jobd.oops o JOIN jobd.job j ON j.id = o.job_id "
      "ORDER BY j.date_finished DESC LIMIT 1");
  EXPECT_EQ(link[2].str(), newest);
  testing::ProcessResult oops = chromium.run(base + link[1].str(), 1000);
  ASSERT_EQ(oops.exit_code, 0) << oops.err;
  EXPECT_THAT(oops.out, HasSubstr("File \"report.py\", line 42, in run"));
  EXPECT_THAT(oops.out, HasSubstr("\"customer\": \"c-"));

  std::filesystem::path artifacts = std::filesystem::path(JOBD_BUILD_DIR) / "test-artifacts";
  std::filesystem::create_directories(artifacts);
  for (const auto& [name, url] :
       {std::pair{"dashboard.png", base + "/"}, std::pair{"oops.png", base + link[1].str()}}) {
    std::filesystem::path shot = artifacts / name;
    std::filesystem::remove(shot);
    testing::ProcessResult r = chromium.run(url, 1000, shot.string());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GT(std::filesystem::exists(shot) ? std::filesystem::file_size(shot) : 0, 10000u);
    std::cout << "screenshot: " << shot.string() << "\n";
  }

  // Server time, from the page's Server-Timing header: the median of five
  // answers of each must be under 50 ms. (The slowest is printed: one
  // answer in CI once took 94 ms while the median stayed low; the
  // daemon's own roll-up, every 10 s, and other tests share two cores.)
  double slowest = 0;
  for (const char* path : {"/", "/?live=1"}) {
    std::vector<double> took;
    for (int i = 0; i < 5; ++i) {
      testing::HttpReply reply = testing::httpGet(base + path);
      ASSERT_EQ(reply.status, 200) << reply.body;
      took.push_back(testing::serverTimingTotal(reply));
    }
    std::sort(took.begin(), took.end());
    slowest = std::max(slowest, took.back());
    std::cout << "dashboard " << path << " server time: median " << took[2] << " ms, slowest "
              << took.back() << " ms\n";
    EXPECT_GT(took[2], 0) << path;
    EXPECT_LT(took[2], 50) << path;
  }

  // `jobd status` on the same table, less what starting and ending the
  // binary costs (about 0.6 s for the sanitized test build, 20 ms for a
  // release build): the query and its rendering take under a second.
  auto timed = [](const std::vector<std::string>& args) {
    auto started = std::chrono::steady_clock::now();
    testing::ProcessResult result = testing::runJobd(args);
    return std::make_pair(
        result, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  };
  double startup = 1e9;
  for (int i = 0; i < 2; ++i) {  // the quicker of two: one may be slowed
    auto [version, took] = timed({"--version"});
    ASSERT_EQ(version.exit_code, 0) << version.err;
    startup = std::min(startup, took);
  }
  // The quicker of two as well (under ctest -j2 one took 1.46 s more than
  // the start, next to another test's Chromium).
  testing::ProcessResult status;
  double seconds = 1e9;
  for (int i = 0; i < 2; ++i) {
    auto [result, took] =
        timed({"--database", db.conninfo(), "--config", "/dev/null", "status", "--json"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    status = result;
    seconds = std::min(seconds, took);
  }
  std::cout << "jobd status: " << seconds << " s, of which " << startup << " s starting\n";
  EXPECT_LT(seconds - startup, 1.0);
  nlohmann::json counts = nlohmann::json::parse(status.out)["job_types"];
  long long completed = 0, failed = 0;
  for (const auto& t : counts) {
    completed += t["completed"].get<long long>();
    failed += t["failed"].get<long long>();
  }
  EXPECT_EQ(completed, 990000 + 120 + 60 + 6000 - 666);
  EXPECT_EQ(failed, 10000 + 666);

  checkTrends(db, base, chromium);
  checkBrowsePages(db, base, chromium);  // after: it adds a target's jobs
  testing::ProcessResult r = daemon.stop();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace jobd
