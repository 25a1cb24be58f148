// The dashboard's pages past the front one: a job type's page, its jobs by
// status a page at a time, and what a search found (store/browse_query.hpp
// gives their JSON).
#include <fmt/format.h>

#include "core/text.hpp"
#include "http/charts.hpp"
#include "http/html.hpp"
#include "http/pages.hpp"

namespace jobd::http {
namespace {

constexpr const char* kLists[] = {"waiting",   "scheduled", "running",
                                  "completed", "failed",    "suspended"};

std::string listUrl(const std::string& job_type, const std::string& list,
                    const std::string& after = "") {
  return "/jobs?type=" + urlEncode(job_type) + "&status=" + list +
         (after.empty() ? "" : "&after=" + urlEncode(after));
}

// Links to every list of the type, the one shown marked.
std::string listsNav(const std::string& job_type, const std::string& current) {
  std::string out = "<nav class=\"lists\" aria-label=\"lists\">";
  for (const char* list : kLists) {
    out += list == current
               ? std::string("<b aria-current=\"page\">") + list + "</b> "
               : "<a href=\"" + escapeHtml(listUrl(job_type, list)) + "\">" + list + "</a> ";
  }
  return out + "</nav>";
}

std::string number(const nlohmann::json& n) {
  return n.is_number_integer() ? html::grouped(n.get<std::int64_t>()) : html::text(n);
}

// The table of jobs a list or a search shows.
std::string jobsTable(const nlohmann::json& jobs, const nlohmann::json& now, bool with_type) {
  if (jobs.empty()) {
    return "<p class=\"muted\">none</p>";
  }
  std::string out = "<div class=\"scroll\"><table id=\"jobs\"><tr><th>job</th>" +
                    std::string(with_type ? "<th>job type</th>" : "") +
                    "<th>status</th><th class=\"n\">priority</th><th>target</th>"
                    "<th class=\"n\">attempt</th><th>created</th><th>scheduled</th>"
                    "<th>started</th><th>finished</th><th>took</th><th>log</th></tr>";
  for (const auto& j : jobs) {
    std::string took = "-";
    auto started = html::epochMicros(j["date_started"]);
    auto finished = html::epochMicros(j["date_finished"]);
    if (started && finished) {
      took = html::duration(static_cast<double>(*finished - *started) / 1e6);
    }
    out += "<tr><td>" + html::jobLink(j["id"]) + "</td>" +
           (with_type ? "<td>" + html::typeLink(j["job_type"]) + "</td>" : "") +
           html::cell(j["status_name"]) + "<td class=\"n\">" + html::text(j["priority"]) + "</td>" +
           html::cell(j["target"]) + "<td class=\"n\">" + html::text(j["attempt"]) + "</td>" +
           html::whenCell(j["date_created"], now) + html::whenCell(j["scheduled_start"], now) +
           html::whenCell(j["date_started"], now) + html::whenCell(j["date_finished"], now) +
           "<td>" + took + "</td>" + html::cell(j["error"]) + "</tr>";
  }
  return out + "</table></div>";
}

std::string durationOf(const nlohmann::json& config, const char* field) {
  return config[field].is_number() ? html::duration(config[field].get<double>() / 1000) : "-";
}

std::string configurationTable(const nlohmann::json& c) {
  if (c.is_null()) {
    return "<p id=\"configuration\" class=\"muted\">No section of this daemon serves this job "
           "type.</p>";
  }
  auto row = [](const char* name, const std::string& value) {
    return "<tr><th>" + std::string(name) + "</th><td>" + value + "</td></tr>";
  };
  std::string retries = c["max_retries"].is_null() ? "the job's own (max_retries column)"
                                                   : html::text(c["max_retries"]);
  std::string limit = "none";
  if (c.value("limit_concurrency", 0) > 0 || c.value("limit_rate", 0) > 0) {
    std::string parts;
    if (c.value("limit_concurrency", 0) > 0) {
      parts = fmt::format("{} at a time", c["limit_concurrency"].get<int>());
    }
    if (c.value("limit_rate", 0) > 0) {
      parts += (parts.empty() ? "" : ", ") + fmt::format("{} per {}", c["limit_rate"].get<int>(),
                                                         durationOf(c, "limit_rate_period_ms"));
    }
    limit = "by " + html::text(c["limit_key"]) + ": " + parts;
  }
  return "<div class=\"scroll\"><table id=\"configuration\">" +
         row("section", html::text(c["section"])) + row("handler", html::text(c["handler"])) +
         row("runner", html::text(c["runner"])) + row("concurrency", html::text(c["concurrency"])) +
         row("timeout", durationOf(c, "timeout_ms")) +
         row("kill_grace", durationOf(c, "kill_grace_ms")) +
         row("lease_duration", durationOf(c, "lease_duration_ms")) + row("max_retries", retries) +
         row("retry_delay", c.value("retry_backoff", "fixed") == "exponential"
                                ? durationOf(c, "retry_delay_ms") + ", doubling, at most " +
                                      durationOf(c, "retry_delay_max_ms")
                                : durationOf(c, "retry_delay_ms") + ", fixed") +
         row("keep_finished", durationOf(c, "keep_finished_ms")) +
         row("claim_ahead", html::text(c["claim_ahead"])) + row("limit", limit) +
         row("enabled", html::text(c["enabled"])) + "</table></div>";
}

}  // namespace

std::string typePage(const nlohmann::json& t, const nlohmann::json& configuration) {
  const std::string job_type = jsonText(t["job_type"]);
  const nlohmann::json& now = t["now"];
  // With actions on (dashboard_password_file): links to confirm each.
  const bool actions = t.value("actions", false);
  const std::string type_param = "type=" + urlEncode(job_type);
  std::string body;
  if (t.contains("retried") && t["retried"].is_number_integer()) {
    body += "<p id=\"done\" role=\"status\">" + number(t["retried"]) +
            " failed jobs went back to WAITING.</p>";
  }
  if (actions) {
    body += "<p id=\"type-actions\"><a href=\"" + escapeHtml("/action/pause?" + type_param) +
            "\">pause…</a> <a href=\"" + escapeHtml("/action/unpause?" + type_param) +
            "\">unpause…</a> <a href=\"" + escapeHtml("/action/retry-failed?" + type_param) +
            "\">retry failed jobs…</a></p>";
  }
  // The trends (schema 23), over the span chosen: 1 h, 6 h or 24 h.
  const int minutes = t.contains("trends") ? t["trends"].value("minutes", 60) : 60;
  body += "<h2>Trends</h2><nav class=\"spans\" aria-label=\"span\">";
  for (int hours : {1, 6, 24}) {
    std::string label = "last " + std::to_string(hours) + " h";
    body += hours * 60 == minutes
                ? "<b aria-current=\"page\">" + label + "</b>"
                : "<a href=\"/type/" + escapeHtml(urlEncode(job_type)) +
                      (hours == 1 ? std::string() : "?span=" + std::to_string(hours) + "h") +
                      "\">" + label + "</a>";
  }
  body += "</nav>" + charts::trendCharts(t.value("trends", nlohmann::json()));
  body += "<h2>Configuration</h2>" + configurationTable(configuration);
  body += "<h2>Jobs</h2>" + listsNav(job_type, "") +
          "<div class=\"scroll\"><table id=\"counts\"><tr><th class=\"n\">ready</th>"
          "<th class=\"n\">scheduled</th><th class=\"n\">running</th>"
          "<th class=\"n\">suspended</th><th class=\"n\">failed, last hour</th>"
          "<th class=\"n\">oldest ready</th></tr><tr>";
  for (const char* field : {"ready", "scheduled", "running", "suspended", "failed_last_hour"}) {
    body += fmt::format(R"(<td class="n" data-field="{}" data-value="{}">{}</td>)", field,
                        html::text(t[field]), number(t[field]));
  }
  body += "<td class=\"n\">" +
          (t["oldest_ready_age_seconds"].is_number()
               ? html::duration(t["oldest_ready_age_seconds"].get<double>())
               : std::string("-")) +
          "</td></tr></table></div>";

  body += "<h2>Running</h2>";
  if (t["running_jobs"].empty()) {
    body += "<p class=\"muted\">none</p>";
  } else {
    body +=
        "<div class=\"scroll\"><table id=\"running\"><tr><th>job</th><th class=\"n\">attempt</th>"
        "<th>target</th><th>daemon</th><th>started</th><th>lease expires</th></tr>";
    for (const auto& r : t["running_jobs"]) {
      body += "<tr><td>" + html::jobLink(r["id"]) + "</td><td class=\"n\">" +
              html::text(r["attempt"]) + "</td>" + html::cell(r["target"]) +
              html::cell(r["lease_owner"]) + html::whenCell(r["date_started"], now) +
              html::whenCell(r["lease_expires"], now) + "</tr>";
    }
    body += "</table></div>";
  }

  body += "<h2>Failures in the last 24 hours, by error type (the 20 commonest)</h2>";
  if (t["failure_groups"].empty()) {
    body += "<p class=\"muted\">none</p>";
  } else {
    if (t.value("failures_capped", false)) {
      body +=
          fmt::format("<p class=\"muted\">the newest {} failures</p>", number(t["failures_read"]));
    }
    body +=
        "<div class=\"scroll\"><table id=\"failure-groups\"><tr><th>error type</th>"
        "<th class=\"n\">jobs</th><th>last</th><th>latest job</th>" +
        std::string(actions ? "<th></th>" : "") + "</tr>";
    for (const auto& g : t["failure_groups"]) {
      body += "<tr>" + html::cell(g["error_type"]) + "<td class=\"n\" data-error-type=\"" +
              html::text(g["error_type"]) + "\" data-value=\"" + html::text(g["count"]) + "\">" +
              number(g["count"]) + "</td>" + html::whenCell(g["last"], now) + "<td>" +
              html::jobLink(g["latest_job"]) + "</td>";
      if (actions) {
        body += "<td><a href=\"" +
                escapeHtml("/action/retry-failed?" + type_param +
                           "&error_type=" + urlEncode(jsonText(g["error_type"]))) +
                "\">retry these…</a></td>";
      }
      body += "</tr>";
    }
    body += "</table></div>";
  }
  return html::page("job type " + job_type, body);
}

std::string jobsPage(const std::string& job_type, const std::string& list, const std::string& after,
                     const nlohmann::json& page) {
  std::string body = "<p><a href=\"/type/" + escapeHtml(urlEncode(job_type)) + "\">" +
                     escapeHtml(job_type) + "</a></p>" + listsNav(job_type, list);
  body += jobsTable(page["jobs"], page["now"], false);
  body += "<p>";
  if (!after.empty()) {
    body += "<a href=\"" + escapeHtml(listUrl(job_type, list)) + "\">first page</a> ";
  }
  if (!page["next"].is_null()) {
    body += "<a id=\"next\" rel=\"next\" href=\"" +
            escapeHtml(listUrl(job_type, list, page["next"].get<std::string>())) +
            "\">next page</a>";
  }
  body += "</p>";
  return html::page(job_type + ": " + list + " jobs", body);
}

std::string searchPage(const std::string& query, const nlohmann::json& found) {
  std::string body;
  if (found.is_null()) {
    body = "<p>Search for a job by its id, or for the jobs of a target.</p>";
  } else if (found["jobs"].empty()) {
    body = "<p id=\"found\">No job has the id or target \"" + escapeHtml(query) + "\".</p>";
  } else {
    body = "<p id=\"found\">The jobs of target \"" + escapeHtml(query) +
           "\": waiting, running and suspended ones, and the newest finished.</p>" +
           jobsTable(found["jobs"], found["now"], true);
  }
  return html::page("search", body);
}

}  // namespace jobd::http
