#include "http/pages.hpp"

#include <fmt/format.h>

#include <cmath>

#include "core/text.hpp"

namespace jobd::http {
namespace {

constexpr const char* kStyle = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f5f6f8}
header{background:#1d2433;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:baseline}
header h1{font-size:18px;margin:0}header a{color:#9cc3ff}
main{padding:10px 20px}h2{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;background:#fff;min-width:50%}
th,td{padding:4px 10px;border-bottom:1px solid #e2e5ea;text-align:left;vertical-align:top}
th{background:#eceef2;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b3261e;font-weight:600}.muted{color:#6b7280}
pre{background:#fff;border:1px solid #e2e5ea;padding:10px;overflow:auto}
)css";

// Fetches /?live=1 every 3 s while the tab is visible and swaps it in.
constexpr const char* kRefresh = R"js(
(function(){
  function refresh(){
    if(document.hidden){setTimeout(refresh,3000);return;}
    fetch('/?live=1',{cache:'no-store'}).then(function(r){
      if(!r.ok)throw new Error(r.status);return r.text();
    }).then(function(html){
      document.getElementById('live').innerHTML=html;
      document.getElementById('state').textContent='live';
    }).catch(function(){
      document.getElementById('state').textContent='daemon unreachable';
    }).finally(function(){setTimeout(refresh,3000);});
  }
  setTimeout(refresh,3000);
})();
)js";

std::string text(const nlohmann::json& value) {
  return jsonText(value);
}

std::string cell(const nlohmann::json& value) {
  return "<td>" + escapeHtml(text(value)) + "</td>";
}

// 1234567 as 1,234,567.
std::string grouped(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) {
      out += ',';
    }
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string age(const nlohmann::json& seconds) {
  if (!seconds.is_number()) {
    return "-";
  }
  double s = seconds.get<double>();
  if (s < 120) {
    return fmt::format("{:.1f} s", s);
  }
  if (s < 7200) {
    return fmt::format("{:.0f} min", s / 60);
  }
  return fmt::format("{:.1f} h", s / 3600);
}

std::string count(const nlohmann::json& type, const char* field, bool alarm = false) {
  std::int64_t n = type[field].is_number() ? type[field].get<std::int64_t>() : 0;
  return fmt::format(
      R"(<td class="n{}" data-job-type="{}" data-field="{}" data-value="{}">{}</td>)",
      alarm && n > 0 ? " bad" : "", escapeHtml(text(type["job_type"])), field, n, grouped(n));
}

std::string jobLink(const nlohmann::json& id) {
  std::string shown = escapeHtml(text(id));
  return "<a href=\"/job/" + shown + "\">" + shown + "</a>";
}

std::string oopsLink(const nlohmann::json& id) {
  if (id.is_null()) {
    return "-";
  }
  std::string shown = escapeHtml(text(id));
  return "<a class=\"oops\" href=\"/oops/" + shown + "\">" + shown + "</a>";
}

std::string page(const std::string& title, const std::string& body, bool refresh = false) {
  return "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>" +
         escapeHtml(title) + "</title><style>" + kStyle +
         "</style></head><body><header><h1><a href=\"/\">jobd</a></h1><span>" + escapeHtml(title) +
         "</span><span id=\"state\" class=\"muted\"></span></header><main>" + body + "</main>" +
         (refresh ? std::string("<script>") + kRefresh + "</script>" : "") + "</body></html>";
}

std::string jobTypesTable(const nlohmann::json& types) {
  std::string out =
      "<h2>Job types</h2><table id=\"job-types\"><tr><th>job type</th><th class=\"n\">ready</th>"
      "<th class=\"n\">scheduled</th><th class=\"n\">running</th><th class=\"n\">failed, last "
      "hour</th><th class=\"n\">oldest ready</th></tr>";
  for (const auto& t : types) {
    out += "<tr>" + cell(t["job_type"]) + count(t, "ready") + count(t, "scheduled") +
           count(t, "running") + count(t, "failed_last_hour", true) + "<td class=\"n\">" +
           age(t["oldest_ready_age_seconds"]) + "</td></tr>";
  }
  return out + "</table>";
}

// At most `limit` bytes of text, cut at a character, with an ellipsis.
std::string shortened(const std::string& value, std::size_t limit) {
  if (value.size() <= limit) {
    return value;
  }
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(value[end]) & 0xC0) == 0x80) {
    --end;
  }
  return value.substr(0, end) + "\u2026";
}

// A job's last report (schema 18): "70% copied 7 of 10 files", or "-".
std::string progressText(const nlohmann::json& percent, const nlohmann::json& message) {
  if (percent.is_null() && message.is_null()) {
    return "-";
  }
  std::string out = percent.is_null() ? "" : fmt::format("{:.0f}%", percent.get<double>());
  if (!message.is_null()) {
    out += (out.empty() ? "" : " ") + message.get<std::string>();
  }
  return out;
}

std::string runningTable(const nlohmann::json& running) {
  std::string out = "<h2>Running jobs</h2>";
  if (running.empty()) {
    return out + "<p class=\"muted\">none</p>";
  }
  out +=
      "<table id=\"running\"><tr><th>job</th><th>job type</th><th class=\"n\">attempt</th>"
      "<th>progress</th><th>daemon</th><th>started</th><th>lease expires</th></tr>";
  for (const auto& r : running) {
    out += "<tr><td>" + jobLink(r["id"]) + "</td>" + cell(r["job_type"]) + "<td class=\"n\">" +
           escapeHtml(text(r["attempt"])) + "</td>" +
           cell(progressText(r["progress_percent"], r["progress_message"])) +
           cell(r["lease_owner"]) + cell(r["date_started"]) + cell(r["lease_expires"]) + "</tr>";
  }
  return out + "</table>";
}

std::string failuresTable(const nlohmann::json& failures) {
  std::string out = "<h2>Latest failures</h2>";
  if (failures.empty()) {
    return out + "<p class=\"muted\">none</p>";
  }
  out +=
      "<table id=\"failures\"><tr><th>job</th><th>job type</th><th>finished</th><th>error</th>"
      "<th>OOPS</th></tr>";
  for (const auto& f : failures) {
    std::string error = f["oops_type"].is_null()
                            ? text(f["log"])
                            : text(f["oops_type"]) + ": " + text(f["oops_value"]);
    out += "<tr><td>" + jobLink(f["id"]) + "</td>" + cell(f["job_type"]) +
           cell(f["date_finished"]) + cell(error) + "<td>" + oopsLink(f["oops_id"]) + "</td></tr>";
  }
  return out + "</table>";
}

std::string daemonsTable(const nlohmann::json& daemons) {
  std::string out = "<h2>Live daemons</h2>";
  if (daemons.empty()) {
    return out + "<p class=\"muted\">none</p>";
  }
  out +=
      "<table id=\"daemons\"><tr><th>daemon</th><th>version</th><th>sections</th>"
      "<th class=\"n\">running</th><th class=\"n\">workers</th><th>started</th><th>last "
      "seen</th></tr>";
  for (const auto& d : daemons) {
    std::string sections;
    for (const auto& s : d["sections"]) {
      sections += (sections.empty() ? "" : ", ") + text(s);
    }
    out += "<tr><td>" + escapeHtml(text(d["owner"])) +
           (d["draining"].is_boolean() && d["draining"].get<bool>() ? " <b>draining</b>" : "") +
           "</td>" + cell(d["version"]) + cell(sections) + "<td class=\"n\">" +
           escapeHtml(text(d["running"])) + "</td><td class=\"n\">" +
           escapeHtml(text(d["workers"])) + "</td>" + cell(d["started"]) + cell(d["last_seen"]) +
           "</tr>";
  }
  return out + "</table>";
}

// The pauses in force (schema 14): nothing when there are none.
std::string pausedTable(const nlohmann::json& paused) {
  if (!paused.is_array() || paused.empty()) {
    return "";
  }
  std::string out =
      "<h2>Paused</h2><table id=\"paused\"><tr><th>job type</th><th>target</th><th>by</th>"
      "<th>since</th><th>until</th><th>reason</th></tr>";
  for (const auto& p : paused) {
    out += "<tr>" + cell(p["job_type"]) +
           cell(p["target"].is_null() ? std::string("every target") : text(p["target"])) +
           cell(p["paused_by"]) + cell(p["paused_at"]) +
           cell(p["until"].is_null() ? std::string("until unpaused") : text(p["until"])) +
           cell(p["reason"]) + "</tr>";
  }
  return out + "</table>";
}

// The keys whose jobs a limit parked (schema 20), most first: nothing when
// there are none.
std::string throttledTable(const nlohmann::json& throttled) {
  if (!throttled.is_array() || throttled.empty()) {
    return "";
  }
  std::string out =
      "<h2>Throttled</h2><table id=\"throttled\"><tr><th>job type</th><th>limited by</th>"
      "<th>key</th><th>parked</th><th>first in line since</th><th>starts</th></tr>";
  for (const auto& t : throttled) {
    std::string starts =
        !t["blocked_until"].is_null() ? "rate limited until " + text(t["blocked_until"])
        : !t["next_due"].is_null()    ? "next token at " + text(t["next_due"])
                                   : std::string("when a running job ends, or in its key's turn");
    out += "<tr>" + cell(t["job_type"]) + cell(t["limited_by"]) + cell(t["key"]) +
           "<td class=\"n\">" + escapeHtml(text(t["parked"])) +
           (t["parked"].is_number() && t["parked"].get<int>() >= 10000 ? "+" : "") + "</td>" +
           cell(t["since"]) + cell(starts) + "</tr>";
  }
  return out + "</table>";
}

// Every schedule (schema 15): its next and last ticks, and the last job's
// outcome; nothing when there are none.
std::string schedulesTable(const nlohmann::json& schedules) {
  if (!schedules.is_array() || schedules.empty()) {
    return "";
  }
  std::string out =
      "<h2>Schedules</h2><table id=\"schedules\"><tr><th>schedule</th><th>job type</th>"
      "<th>spec</th><th>next</th><th>last</th><th>last job</th><th>missed</th>"
      "<th>skipped</th></tr>";
  for (const auto& s : schedules) {
    std::string state;
    if (!s["problem"].is_null()) {
      state = " <b>not run: " + escapeHtml(text(s["problem"])) + "</b>";
    } else if (s.value("paused", false)) {
      state = " <b>paused</b>";
    }
    std::string last_job = "-";
    if (!s["last_job"].is_null()) {
      last_job =
          jobLink(s["last_job"]) + " " +
          escapeHtml(s["last_status"].is_null() ? std::string("pruned") : text(s["last_status"]));
    }
    out += "<tr><td>" + escapeHtml(text(s["name"])) + state + "</td>" + cell(s["job_type"]) +
           cell(text(s["spec"]) + " (" + text(s["time_zone"]) + ")") +
           cell(s.value("paused", false) ? nlohmann::json("paused") : s["next_fire"]) +
           cell(s["last_fire"]) + "<td>" + last_job + "</td><td class=\"n\">" +
           escapeHtml(text(s["missed"])) + "</td><td class=\"n\">" +
           escapeHtml(text(s["skipped"])) + "</td></tr>";
  }
  return out + "</table>";
}

std::string fieldsTable(const nlohmann::json& object, std::initializer_list<const char*> fields) {
  std::string out = "<table>";
  for (const char* field : fields) {
    out += "<tr><th>" + std::string(field) + "</th>" + cell(object[field]) + "</tr>";
  }
  return out + "</table>";
}

}  // namespace

std::string escapeHtml(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string dashboardLive(const nlohmann::json& d) {
  return "<p class=\"muted\">as of " + escapeHtml(text(d["now"])) + "</p>" +
         pausedTable(d.value("paused", nlohmann::json::array())) + jobTypesTable(d["job_types"]) +
         throttledTable(d.value("throttled", nlohmann::json::array())) +
         runningTable(d["running"]) + failuresTable(d["failures"]) +
         schedulesTable(d.value("schedules", nlohmann::json::array())) + daemonsTable(d["daemons"]);
}

std::string dashboardPage(const nlohmann::json& d) {
  return page("dashboard", "<div id=\"live\">" + dashboardLive(d) + "</div>", true);
}

// Schema 19: the jobs this one waits for and that wait for it, the hold,
// and its batch; nothing when it has none of them.
std::string dependenciesSection(const nlohmann::json& job) {
  const nlohmann::json none = nlohmann::json::array();
  const nlohmann::json& parents = job.contains("parents") ? job["parents"] : none;
  const nlohmann::json& children = job.contains("children") ? job["children"] : none;
  bool held = job.contains("held") && !job["held"].is_null();
  bool batch = job.contains("batch") && !job["batch"].is_null();
  if (parents.empty() && children.empty() && !held && !batch) {
    return "";
  }
  std::string out = "<h2>Dependencies</h2>";
  if (held) {
    const nlohmann::json& h = job["held"];
    out += "<p id=\"held\">held: waits for " + escapeHtml(text(h["pending"])) +
           " parent job(s), then " +
           (h["scheduled_start"].is_null()
                ? std::string("runs at once")
                : "is scheduled at " + escapeHtml(text(h["scheduled_start"]))) +
           "</p>";
  }
  for (const auto& [title, edges] :
       {std::pair<const char*, const nlohmann::json*>{"parents", &parents},
        std::pair<const char*, const nlohmann::json*>{"children", &children}}) {
    if (edges->empty()) {
      continue;
    }
    out += std::string("<table id=\"") + title + "\"><tr><th>" + title +
           "</th><th>status</th><th>edge</th><th>if the parent fails</th></tr>";
    for (const auto& e : *edges) {
      out += "<tr><td>" + jobLink(e["id"]) + "</td>" + cell(e["status_name"]) + cell(e["state"]) +
             cell(e["on_failure"]) + "</tr>";
    }
    out += "</table>";
  }
  if (batch) {
    out += "<p id=\"batch\">in batch " + escapeHtml(text(job["batch"])) + "</p>";
  }
  return out;
}

std::string jobPage(const nlohmann::json& job) {
  std::string body =
      fieldsTable(job, {"id", "job_type", "status_name", "priority", "target", "requester",
                        "attempt_count", "max_retries", "scheduled_start", "lease_expires",
                        "lease_owner", "date_created", "date_started", "date_finished", "log"});
  body += "<h2>json_data</h2><pre>" + escapeHtml(job["json_data"].dump(2)) + "</pre>";
  if (const nlohmann::json& p = job["progress"]; !p.is_null()) {
    body +=
        "<h2>Progress</h2><table id=\"progress\"><tr><th>progress</th><th>attempt</th>"
        "<th>reported</th><th>checkpoint</th><th>saved</th></tr><tr>" +
        cell(progressText(p["percent"], p["message"])) + cell(p["attempt"]) + cell(p["reported"]) +
        cell(shortened(text(p["checkpoint_text"]), 200)) + cell(p["checkpointed"]) +
        "</tr></table>";
  }
  body += dependenciesSection(job);
  if (job.contains("throttled") && !job["throttled"].is_null()) {
    body += "<p id=\"throttled\">throttled: parked by its type's limit or fairness (key " +
            escapeHtml(text(job["throttled"]["key"])) + ") since " +
            escapeHtml(text(job["throttled"]["since"])) +
            "; it starts when the key has room and its turn comes</p>";
  }
  body += "<h2>Attempts</h2>";
  if (job["attempts"].empty()) {
    body += "<p class=\"muted\">none</p>";
  } else {
    body +=
        "<table><tr><th class=\"n\">attempt</th><th>outcome</th><th>finished</th><th>daemon</th>"
        "<th>error</th><th>OOPS</th></tr>";
    for (const auto& a : job["attempts"]) {
      std::string error =
          a["error_type"].is_null() ? "-" : text(a["error_type"]) + ": " + text(a["error_message"]);
      body += "<tr><td class=\"n\">" + escapeHtml(text(a["attempt"])) + "</td>" +
              cell(a["outcome"]) + cell(a["date_finished"]) + cell(a["daemon"]) + cell(error) +
              "<td>" + oopsLink(a["oops_id"]) + "</td></tr>";
    }
    body += "</table>";
  }
  body += "<h2>OOPS reports</h2>";
  if (job["oops"].empty()) {
    body += "<p class=\"muted\">none</p>";
  } else {
    body += "<ul>";
    for (const auto& o : job["oops"]) {
      body += "<li>" + oopsLink(o["id"]) + " " + escapeHtml(text(o["type"])) + ": " +
              escapeHtml(text(o["value"])) + "</li>";
    }
    body += "</ul>";
  }
  return page("job " + text(job["id"]), body);
}

std::string oopsPage(const nlohmann::json& oops) {
  std::string body = fieldsTable(
      oops, {"id", "time", "reporter", "hostname", "job_type", "attempt", "type", "value"});
  body += "<p>job " + jobLink(oops["job_id"]) + "</p>";
  body += "<h2>Traceback</h2><pre id=\"traceback\">" +
          escapeHtml(oops["traceback"].is_null() ? "none" : text(oops["traceback"])) + "</pre>";
  body += "<h2>Variables</h2><pre id=\"vars\">" + escapeHtml(oops["vars"].dump(2)) + "</pre>";
  return page("OOPS " + text(oops["id"]), body);
}

std::string messagePage(const std::string& title, const std::string& text) {
  return page(title, "<p>" + escapeHtml(text) + "</p>");
}

}  // namespace jobd::http
