// The dashboard's HTML (SPEC §9), rendered on the server from the JSON that
// store::loadDashboard, JobStore::show and JobStore::oops return. No
// external asset: the style and the few lines of script are inline. Every
// value from the database is escaped. Pure functions, any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "http/html.hpp"

namespace jobd::http {

// The whole page at /: a header, the live part, and a script that fetches
// the live part again every few seconds and swaps it in without a reload.
std::string dashboardPage(const nlohmann::json& dashboard);
// The live part alone, for /?live=1. Every count carries data-job-type and
// data-field attributes, so that tests and scripts can read the numbers.
std::string dashboardLive(const nlohmann::json& dashboard);
// /job/<id>: the row, its attempts and its OOPS reports; with "actions"
// (an array of names), links to confirm each.
std::string jobPage(const nlohmann::json& job);
// /oops/<id>: type, value, traceback and vars.
std::string oopsPage(const nlohmann::json& oops);
// /job/<id>/<action>: what the action does to this job, and the form
// that makes it (its token hidden in it), or why it cannot.
std::string actionPage(const nlohmann::json& job, const std::string& action,
                       const std::string& csrf_token);
// A short page for 404 and 503 answers.
std::string messagePage(const std::string& title, const std::string& text);

// /type/<job type>: its configuration (a section's, as json, or null when
// no section here serves it), counts, running jobs and failures by error
// type (store::loadJobType).
std::string typePage(const nlohmann::json& type, const nlohmann::json& configuration);
// /jobs?type=&status=&after=: one page of a list (store::listJobs), with
// links to the others and to the next page.
std::string jobsPage(const std::string& job_type, const std::string& list, const std::string& after,
                     const nlohmann::json& page);
// /search?q=: the jobs of a target (store::findByTarget), or, with `found`
// null, what the box is for.
std::string searchPage(const std::string& query, const nlohmann::json& found);

}  // namespace jobd::http
