#include "http/pages.hpp"

#include <fmt/format.h>

#include <cmath>
#include <map>

#include "core/text.hpp"
#include "http/charts.hpp"
#include "http/html.hpp"

namespace jobd::http {
namespace {

// Fetches /?live=1 every 3 s while the tab is visible and swaps it in.
// The page must not move when it does: at each swap the script measures
// how far each heading and table of the live part moved (its top, and a
// table's width), in pixels, and keeps the total in
// <body data-layout-shift> (DashboardTest reads it).
constexpr const char* kRefresh = R"js(
(function(){
  var moved=0;
  function boxes(live){
    var m={};
    live.querySelectorAll('h2,table[id]').forEach(function(e){
      var r=e.getBoundingClientRect();m[e.id||e.textContent]=[r.top,e.id?r.width:0];});
    return m;
  }
  function refresh(){
    if(document.hidden){setTimeout(refresh,3000);return;}
    fetch('/?live=1',{cache:'no-store'}).then(function(r){
      if(!r.ok)throw new Error(r.status);return r.text();
    }).then(function(html){
      // Keyboard focus stays on the link it was on.
      var live=document.getElementById('live'),a=document.activeElement;
      var href=a&&live.contains(a)?a.getAttribute('href'):null;
      var before=boxes(live);
      live.innerHTML=html;
      var after=boxes(live);
      for(var k in before){
        if(after[k])moved+=Math.abs(after[k][0]-before[k][0])+Math.abs(after[k][1]-before[k][1]);
      }
      document.body.dataset.layoutShift=moved.toFixed(1);
      if(href){var b=live.querySelector('a[href="'+href.replace(/["\\]/g,'\\$&')+'"]');if(b)b.focus();}
      document.getElementById('state').textContent='live';
    }).catch(function(){
      document.getElementById('state').textContent='daemon unreachable';
    }).finally(function(){setTimeout(refresh,3000);});
  }
  setTimeout(refresh,3000);
})();
)js";

// A value's text, NOT escaped: every caller escapes it or passes it to
// html::cell, which does (html::text is the escaping one).
std::string plainText(const nlohmann::json& value) {
  return jsonText(value);
}

using html::cell;
using html::grouped;
using html::jobLink;
using html::oopsLink;
using html::whenCell;

std::string page(const std::string& title, const std::string& body, bool refresh = false) {
  return html::page(title, body, refresh ? kRefresh : "");
}

std::string age(const nlohmann::json& seconds) {
  return seconds.is_number() ? html::duration(seconds.get<double>()) : "-";
}

std::string count(const nlohmann::json& type, const char* field, bool alarm = false) {
  std::int64_t n = type[field].is_number() ? type[field].get<std::int64_t>() : 0;
  return fmt::format(
      R"(<td class="n{}" data-job-type="{}" data-field="{}" data-value="{}">{}</td>)",
      alarm && n > 0 ? " bad" : "", escapeHtml(plainText(type["job_type"])), field, n, grouped(n));
}

// Each type's counts, and its last hour at a glance (completed and failed
// per minute; the type's page has the charts).
std::string jobTypesTable(const nlohmann::json& types, const nlohmann::json& now_minute) {
  std::string out =
      "<h2>Job types</h2><div class=\"scroll\"><table id=\"job-types\"><tr><th>job type</th>"
      "<th class=\"n\">ready</th><th class=\"n\">scheduled</th><th class=\"n\">running</th>"
      "<th class=\"n\">failed, last hour</th><th class=\"n\">oldest ready</th>"
      "<th>last hour</th></tr>";
  for (const auto& t : types) {
    out += "<tr><td>" + html::typeLink(t["job_type"]) + "</td>" + count(t, "ready") +
           count(t, "scheduled") + count(t, "running") + count(t, "failed_last_hour", true) +
           "<td class=\"n\">" + age(t["oldest_ready_age_seconds"]) + "</td><td>" +
           (now_minute.is_number_integer() && t.contains("last_hour")
                ? charts::sparkline(t["last_hour"], t.value("rolled", nlohmann::json()),
                                    now_minute.get<std::int64_t>())
                : std::string("-")) +
           "</td></tr>";
  }
  return out + "</table></div>";
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

std::string runningTable(const nlohmann::json& running, const nlohmann::json& now) {
  std::string out = "<h2>Running jobs</h2>";
  if (running.empty()) {
    return out + "<p class=\"muted\">none</p>";
  }
  out +=
      "<table id=\"running\"><tr><th>job</th><th>job type</th><th class=\"n\">attempt</th>"
      "<th>progress</th><th>daemon</th><th>started</th><th>lease expires</th></tr>";
  for (const auto& r : running) {
    out += "<tr><td>" + jobLink(r["id"]) + "</td><td>" + html::typeLink(r["job_type"]) +
           "</td><td class=\"n\">" + escapeHtml(plainText(r["attempt"])) + "</td>" +
           cell(progressText(r["progress_percent"], r["progress_message"])) +
           cell(r["lease_owner"]) + whenCell(r["date_started"], now) +
           whenCell(r["lease_expires"], now) + "</tr>";
  }
  return out + "</table>";
}

std::string failuresTable(const nlohmann::json& failures, const nlohmann::json& now) {
  std::string out = "<h2>Latest failures</h2>";
  if (failures.empty()) {
    return out + "<p class=\"muted\">none</p>";
  }
  out +=
      "<table id=\"failures\"><tr><th>job</th><th>job type</th><th>finished</th><th>error</th>"
      "<th>OOPS</th></tr>";
  for (const auto& f : failures) {
    std::string error = f["oops_type"].is_null()
                            ? plainText(f["log"])
                            : plainText(f["oops_type"]) + ": " + plainText(f["oops_value"]);
    out += "<tr><td>" + jobLink(f["id"]) + "</td><td>" + html::typeLink(f["job_type"]) + "</td>" +
           whenCell(f["date_finished"], now) + cell(error) + "<td>" + oopsLink(f["oops_id"]) +
           "</td></tr>";
  }
  return out + "</table>";
}

std::string daemonsTable(const nlohmann::json& daemons, const nlohmann::json& now) {
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
      sections += (sections.empty() ? "" : ", ") + plainText(s);
    }
    out += "<tr><td>" + escapeHtml(plainText(d["owner"])) +
           (d["draining"].is_boolean() && d["draining"].get<bool>() ? " <b>draining</b>" : "") +
           "</td>" + cell(d["version"]) + cell(sections) + "<td class=\"n\">" +
           escapeHtml(plainText(d["running"])) + "</td><td class=\"n\">" +
           escapeHtml(plainText(d["workers"])) + "</td>" + whenCell(d["started"], now) +
           whenCell(d["last_seen"], now) + "</tr>";
  }
  return out + "</table>";
}

// A link to confirm an action on a type or a schedule (http/actions.cpp).
std::string actionLink(const std::string& action, const std::string& query,
                       const std::string& label) {
  return "<a href=\"" + escapeHtml("/action/" + action + "?" + query) + "\">" + label + "</a>";
}

// The pauses in force (schema 14): nothing when there are none. With
// actions on, each row links to its unpause.
std::string pausedTable(const nlohmann::json& paused, const nlohmann::json& now, bool actions) {
  if (!paused.is_array() || paused.empty()) {
    return "";
  }
  std::string out =
      "<h2>Paused</h2><table id=\"paused\"><tr><th>job type</th><th>target</th><th>by</th>"
      "<th>since</th><th>until</th><th>reason</th>" +
      std::string(actions ? "<th></th>" : "") + "</tr>";
  for (const auto& p : paused) {
    out +=
        "<tr>" + cell(p["job_type"]) +
        cell(p["target"].is_null() ? std::string("every target") : plainText(p["target"])) +
        cell(p["paused_by"]) + whenCell(p["paused_at"], now) +
        (p["until"].is_null() ? cell(std::string("until unpaused")) : whenCell(p["until"], now)) +
        cell(p["reason"]);
    if (actions) {
      out += "<td>" +
             actionLink(
                 "unpause",
                 "type=" + urlEncode(plainText(p["job_type"])) +
                     (p["target"].is_null() ? "" : "&target=" + urlEncode(plainText(p["target"]))),
                 "unpause…") +
             "</td>";
    }
    out += "</tr>";
  }
  return out + "</table>";
}

// The keys whose jobs a limit parked (schema 20), most first: nothing when
// there are none.
std::string throttledTable(const nlohmann::json& throttled, const nlohmann::json& now) {
  if (!throttled.is_array() || throttled.empty()) {
    return "";
  }
  std::string out =
      "<h2>Throttled</h2><table id=\"throttled\"><tr><th>job type</th><th>limited by</th>"
      "<th>key</th><th>parked</th><th>first in line since</th><th>starts</th></tr>";
  for (const auto& t : throttled) {
    std::string starts = !t["blocked_until"].is_null()
                             ? "rate limited; the next start " + html::when(t["blocked_until"], now)
                         : !t["next_due"].is_null()
                             ? "the next token " + html::when(t["next_due"], now)
                             : std::string("when a running job ends, or in its key&#39;s turn");
    out += "<tr>" + cell(t["job_type"]) + cell(t["limited_by"]) + cell(t["key"]) +
           "<td class=\"n\">" + escapeHtml(plainText(t["parked"])) +
           (t["parked"].is_number() && t["parked"].get<int>() >= 10000 ? "+" : "") + "</td>" +
           whenCell(t["since"], now) + "<td>" + starts + "</td></tr>";
  }
  return out + "</table>";
}

// Every schedule (schema 15): its next and last ticks, and the last job's
// outcome; nothing when there are none.
std::string schedulesTable(const nlohmann::json& schedules, const nlohmann::json& now,
                           bool actions) {
  if (!schedules.is_array() || schedules.empty()) {
    return "";
  }
  std::string out =
      "<h2>Schedules</h2><table id=\"schedules\"><tr><th>schedule</th><th>job type</th>"
      "<th>spec</th><th>next</th><th>last</th><th>last job</th><th>missed</th>"
      "<th>skipped</th>" +
      std::string(actions ? "<th></th>" : "") + "</tr>";
  for (const auto& s : schedules) {
    std::string state;
    if (!s["problem"].is_null()) {
      state = " <b>not run: " + escapeHtml(plainText(s["problem"])) + "</b>";
    } else if (s.value("paused", false)) {
      state = " <b>paused</b>";
    }
    std::string last_job = "-";
    if (!s["last_job"].is_null()) {
      last_job = jobLink(s["last_job"]) + " " +
                 escapeHtml(s["last_status"].is_null() ? std::string("pruned")
                                                       : plainText(s["last_status"]));
    }
    out += "<tr><td>" + escapeHtml(plainText(s["name"])) + state + "</td>" + cell(s["job_type"]) +
           cell(plainText(s["spec"]) + " (" + plainText(s["time_zone"]) + ")");
    out +=
        s.value("paused", false) ? cell(nlohmann::json("paused")) : whenCell(s["next_fire"], now);
    out += whenCell(s["last_fire"], now) + "<td>" + last_job + "</td><td class=\"n\">" +
           escapeHtml(plainText(s["missed"])) + "</td><td class=\"n\">" +
           escapeHtml(plainText(s["skipped"])) + "</td>";
    if (actions) {
      bool paused = s.value("paused", false);
      out += "<td>" +
             actionLink(paused ? "resume-schedule" : "pause-schedule",
                        "name=" + urlEncode(plainText(s["name"])), paused ? "resume…" : "pause…") +
             "</td>";
    }
    out += "</tr>";
  }
  return out + "</table>";
}

std::string fieldsTable(const nlohmann::json& object, std::initializer_list<const char*> fields) {
  std::string out = "<table>";
  for (const char* field : fields) {
    // A time: relative to the page's "now", and the exact UTC time
    // beside it (a page of one job has room for both).
    const nlohmann::json& value = object[field];
    const std::string name = field;
    const bool time = name.rfind("date_", 0) == 0 || name == "scheduled_start" ||
                      name == "lease_expires" || name == "time";
    out += "<tr><th>" + name + "</th>";
    if (time && html::epochMicros(value)) {
      out += "<td>" + html::when(value, object.value("now", nlohmann::json())) +
             " <span class=\"muted\">" + html::when(value, nullptr) + "</span></td></tr>";
    } else {
      out += cell(value) + "</tr>";
    }
  }
  return out + "</table>";
}

}  // namespace

std::string dashboardLive(const nlohmann::json& d) {
  const nlohmann::json& now = d["now"];
  const bool actions = d.value("actions", false);
  return "<p class=\"muted\">as of " + html::when(now, nullptr) + "</p>" +
         pausedTable(d.value("paused", nlohmann::json::array()), now, actions) +
         jobTypesTable(d["job_types"], d.value("now_minute", nlohmann::json())) +
         throttledTable(d.value("throttled", nlohmann::json::array()), now) +
         runningTable(d["running"], now) + failuresTable(d["failures"], now) +
         schedulesTable(d.value("schedules", nlohmann::json::array()), now, actions) +
         daemonsTable(d["daemons"], now);
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
    out += "<p id=\"held\">held: waits for " + escapeHtml(plainText(h["pending"])) +
           " parent job(s), then " +
           (h["scheduled_start"].is_null()
                ? std::string("runs at once")
                : "is scheduled at " + escapeHtml(plainText(h["scheduled_start"]))) +
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
    out += "<p id=\"batch\">in batch " + escapeHtml(plainText(job["batch"])) + "</p>";
  }
  return out;
}

namespace {

// The actions an operator may take on the job now, each a link to its
// confirmation (nothing when the dashboard has no password).
std::string actionLinks(const nlohmann::json& job) {
  if (!job.contains("actions") || !job["actions"].is_array()) {
    return "";
  }
  std::string out = "<p id=\"actions\">";
  for (const auto& name : job["actions"]) {
    out += "<a class=\"action\" href=\"/job/" + escapeHtml(plainText(job["id"])) + "/" +
           escapeHtml(plainText(name)) + "\">" + escapeHtml(plainText(name)) + "</a> ";
  }
  if (job["actions"].empty()) {
    out += "<span class=\"muted\">no action applies to a job in this status</span>";
  }
  return out + "</p>";
}

}  // namespace

std::string jobPage(const nlohmann::json& job) {
  std::string body = actionLinks(job);
  body += fieldsTable(job, {"id", "job_type", "status_name", "priority", "target", "requester",
                            "attempt_count", "max_retries", "scheduled_start", "lease_expires",
                            "lease_owner", "date_created", "date_started", "date_finished", "log"});
  body += "<h2>json_data</h2><pre>" + escapeHtml(job["json_data"].dump(2)) + "</pre>";
  if (const nlohmann::json& p = job["progress"]; !p.is_null()) {
    body +=
        "<h2>Progress</h2><table id=\"progress\"><tr><th>progress</th><th>attempt</th>"
        "<th>reported</th><th>checkpoint</th><th>saved</th></tr><tr>" +
        cell(progressText(p["percent"], p["message"])) + cell(p["attempt"]) +
        whenCell(p["reported"], job.value("now", nlohmann::json())) +
        cell(shortened(plainText(p["checkpoint_text"]), 200)) +
        whenCell(p["checkpointed"], job.value("now", nlohmann::json())) + "</tr></table>";
  }
  body += dependenciesSection(job);
  if (job.contains("throttled") && !job["throttled"].is_null()) {
    body += "<p id=\"throttled\">throttled: parked by its type's limit or fairness (key " +
            escapeHtml(plainText(job["throttled"]["key"])) + ") since " +
            html::when(job["throttled"]["since"], job.value("now", nlohmann::json())) +
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
      std::string error = a["error_type"].is_null()
                              ? "-"
                              : plainText(a["error_type"]) + ": " + plainText(a["error_message"]);
      body += "<tr><td class=\"n\">" + escapeHtml(plainText(a["attempt"])) + "</td>" +
              cell(a["outcome"]) +
              whenCell(a["date_finished"], job.value("now", nlohmann::json())) + cell(a["daemon"]) +
              cell(error) + "<td>" + oopsLink(a["oops_id"]) + "</td></tr>";
    }
    body += "</table>";
  }
  body += "<h2>OOPS reports</h2>";
  if (job["oops"].empty()) {
    body += "<p class=\"muted\">none</p>";
  } else {
    body += "<ul>";
    for (const auto& o : job["oops"]) {
      body += "<li>" + oopsLink(o["id"]) + " " + escapeHtml(plainText(o["type"])) + ": " +
              escapeHtml(plainText(o["value"])) + "</li>";
    }
    body += "</ul>";
  }
  return page("job " + plainText(job["id"]), body);
}

std::string oopsPage(const nlohmann::json& oops) {
  std::string body = fieldsTable(
      oops, {"id", "time", "reporter", "hostname", "job_type", "attempt", "type", "value"});
  body += "<p>job " + jobLink(oops["job_id"]) + "</p>";
  body += "<h2>Traceback</h2><pre id=\"traceback\">" +
          escapeHtml(oops["traceback"].is_null() ? "none" : plainText(oops["traceback"])) +
          "</pre>";
  body += "<h2>Variables</h2><pre id=\"vars\">" + escapeHtml(oops["vars"].dump(2)) + "</pre>";
  return page("OOPS " + plainText(oops["id"]), body);
}

std::string actionPage(const nlohmann::json& job, const std::string& action,
                       const std::string& csrf_token) {
  const std::string id = escapeHtml(plainText(job["id"]));
  std::string body = "<p>Job " + jobLink(job["id"]) + " (" + html::typeLink(job["job_type"]) +
                     ") is " + escapeHtml(plainText(job["status_name"])) + ".</p>";
  bool allowed = false;
  for (const auto& name : job.value("actions", nlohmann::json::array())) {
    allowed = allowed || name == action;
  }
  if (!allowed) {
    return page(action + " job " + plainText(job["id"]),
                body + "<p id=\"refused\">" + escapeHtml(action) +
                    " does not apply to a job in this status (SPEC §4.3).</p>");
  }
  static const std::map<std::string, std::string> kWhat = {
      {"retry", "It goes back to WAITING, to run as soon as a daemon is free."},
      {"suspend",
       "It becomes SUSPENDED: no daemon runs it until it is resumed (a running one is stopped "
       "when its daemon hears of it: at once when it listens, else at its next lease renewal)."},
      {"resume", "It goes back to WAITING."},
      {"cancel",
       "It becomes FAILED with the reason below in its log, and does not run again (a running "
       "one is stopped when its daemon hears of it: at once when it listens, else at its next "
       "lease renewal)."}};
  body += "<p>" + escapeHtml(kWhat.count(action) ? kWhat.at(action) : "") + "</p>";
  body += "<form method=\"post\" action=\"/job/" + id + "/" + escapeHtml(action) +
          "\"><input type=\"hidden\" name=\"csrf\" value=\"" + escapeHtml(csrf_token) + "\">";
  if (action == "cancel") {
    body +=
        "<p><label>reason <input name=\"reason\" value=\"cancelled by operator\" "
        "size=\"40\"></label></p>";
  }
  body += "<p><button type=\"submit\" autofocus>" + escapeHtml(action) + " job " + id +
          "</button> <a href=\"/job/" + id + "\">back</a></p></form>";
  return page(action + " job " + plainText(job["id"]) + "?", body);
}

std::string messagePage(const std::string& title, const std::string& text) {
  return page(title, "<p>" + escapeHtml(text) + "</p>");
}

}  // namespace jobd::http
