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

}  // namespace
}  // namespace jobd::http
