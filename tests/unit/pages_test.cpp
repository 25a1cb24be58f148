#include "http/pages.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace jobd::http {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Text from rows (job types, errors, tracebacks) cannot inject markup.
TEST(PagesTest, DatabaseTextIsEscaped) {
  nlohmann::json d = {{"now", "t"},
                      {"job_types",
                       {{{"job_type", "<script>x</script>"},
                         {"ready", 1},
                         {"scheduled", 0},
                         {"running", 0},
                         {"failed_last_hour", 2},
                         {"oldest_ready_age_seconds", 3.5}}}},
                      {"running", nlohmann::json::array()},
                      {"failures",
                       {{{"id", 9},
                         {"job_type", "t"},
                         {"date_finished", "d"},
                         {"log", "x"},
                         {"oops_id", "OOPS-1\"><b>"},
                         {"oops_type", "E"},
                         {"oops_value", "a & b"}}}},
                      {"daemons", nlohmann::json::array()}};
  std::string page = dashboardPage(d);
  EXPECT_THAT(page, Not(HasSubstr("<script>x")));
  EXPECT_THAT(page, HasSubstr("&lt;script&gt;x&lt;/script&gt;"));
  EXPECT_THAT(page, Not(HasSubstr("\"><b>")));
  EXPECT_THAT(page, HasSubstr("a &amp; b"));
  EXPECT_THAT(page, HasSubstr("data-field=\"failed_last_hour\" data-value=\"2\""));
}

// Counts are shown grouped by thousands and carried exactly in data-value.
TEST(PagesTest, CountsAreGroupedAndCarriedExactly) {
  nlohmann::json d = {{"now", "t"},
                      {"job_types",
                       {{{"job_type", "noop"},
                         {"ready", 1234567},
                         {"scheduled", 0},
                         {"running", 0},
                         {"failed_last_hour", 0},
                         {"oldest_ready_age_seconds", nullptr}}}},
                      {"running", nlohmann::json::array()},
                      {"failures", nlohmann::json::array()},
                      {"daemons", nlohmann::json::array()}};
  std::string live = dashboardLive(d);
  EXPECT_THAT(live, HasSubstr("data-value=\"1234567\">1,234,567</td>"));
  EXPECT_THAT(live, Not(HasSubstr("<script")));  // the live part has no script
}

// A running job's last report, and a job's progress and checkpoint, are
// shown escaped; a long checkpoint is cut.
TEST(PagesTest, ProgressIsShown) {
  nlohmann::json d = {{"now", "t"},
                      {"job_types", nlohmann::json::array()},
                      {"running",
                       {{{"id", 5},
                         {"job_type", "export"},
                         {"attempt", 2},
                         {"progress_percent", 70.4},
                         {"progress_message", "copied <7>"},
                         {"lease_owner", "o"},
                         {"date_started", "s"},
                         {"lease_expires", "e"}},
                        {{"id", 6},
                         {"job_type", "export"},
                         {"attempt", 1},
                         {"progress_percent", nullptr},
                         {"progress_message", nullptr},
                         {"lease_owner", "o"},
                         {"date_started", "s"},
                         {"lease_expires", "e"}}}},
                      {"failures", nlohmann::json::array()},
                      {"daemons", nlohmann::json::array()}};
  std::string live = dashboardLive(d);
  EXPECT_THAT(live, HasSubstr("<td>70% copied &lt;7&gt;</td>"));
  EXPECT_THAT(live, HasSubstr("<td class=\"n\">1</td><td>-</td>"));

  nlohmann::json job = {{"id", 5},
                        {"json_data", nlohmann::json::object()},
                        {"attempts", nlohmann::json::array()},
                        {"oops", nlohmann::json::array()},
                        {"progress",
                         {{"percent", 100},
                          {"message", nullptr},
                          {"attempt", 2},
                          {"reported", "r"},
                          {"checkpoint_text", "{\"k\": \"" + std::string(300, 'x') + "\"}"},
                          {"checkpointed", "c"}}}};
  for (const char* field :
       {"job_type", "status_name", "priority", "target", "requester", "attempt_count",
        "max_retries", "scheduled_start", "lease_expires", "lease_owner", "date_created",
        "date_started", "date_finished", "log", "result_text"}) {
    job[field] = nullptr;
  }
  std::string page = jobPage(job);
  EXPECT_THAT(page, HasSubstr("<h2>Progress</h2>"));
  EXPECT_THAT(page, HasSubstr("<td>100%</td>"));
  EXPECT_THAT(page, HasSubstr("xxx\u2026</td>"));
  EXPECT_THAT(page, Not(HasSubstr(std::string(250, 'x'))));
}

// Schema 19: a job's parents and children link to their pages; the hold
// and the batch are named. A job with none of them shows no section.
TEST(PagesTest, AJobPageShowsItsDependencies) {
  nlohmann::json job = nlohmann::json::parse(R"({
    "id": 9, "job_type": "build", "status_name": "WAITING", "json_data": {},
    "attempts": [], "oops": [], "progress": null,
    "parents": [{"id": 4, "status_name": "COMPLETED", "state": "met", "on_failure": "fail"},
                {"id": 5, "status_name": "RUNNING", "state": "pending", "on_failure": "run"}],
    "children": [{"id": 12, "status_name": "WAITING", "state": "pending",
                  "on_failure": "cancel"}],
    "held": {"pending": 1, "scheduled_start": null},
    "batch": 3})");
  for (const char* field : {"priority", "target", "requester", "attempt_count", "max_retries",
                            "scheduled_start", "lease_expires", "lease_owner", "date_created",
                            "date_started", "date_finished", "log", "result_text"}) {
    job[field] = nullptr;
  }
  std::string page = jobPage(job);
  EXPECT_THAT(page, HasSubstr("<h2>Dependencies</h2>"));
  EXPECT_THAT(page, HasSubstr("held: waits for 1 parent job(s), then runs at once"));
  EXPECT_THAT(page, HasSubstr("href=\"/job/5\""));
  EXPECT_THAT(page, HasSubstr("href=\"/job/12\""));
  EXPECT_THAT(page, HasSubstr("<td>cancel</td>"));
  EXPECT_THAT(page, HasSubstr("in batch 3"));
  job["parents"] = nlohmann::json::array();
  job["children"] = nlohmann::json::array();
  job["held"] = nullptr;
  job["batch"] = nullptr;
  EXPECT_THAT(jobPage(job), Not(HasSubstr("Dependencies")));
}

}  // namespace
}  // namespace jobd::http
