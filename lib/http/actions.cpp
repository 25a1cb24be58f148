// The dashboard's actions, for an operator who signed in, each through the
// same store code as its CLI command:
//  - on a job (retry, suspend, resume, cancel): `jobd ACTION ID`,
//    store::JobStore::apply; at /job/ID/ACTION;
//  - on a job type or a schedule, at /action/NAME with the fields as query
//    parameters (GET) or a form (POST): retry-failed (`jobd retry-failed`,
//    JobStore::retryFailed), pause and unpause (`jobd pause|unpause`),
//    pause-schedule and resume-schedule (`jobd schedule pause|resume`).
// A GET asks to confirm; the form it shows POSTs back with this daemon's
// token. A POST is made only when:
//  - the dashboard has a password (dashboard_password_file) and the
//    request carries it: the operator has a name for the log;
//  - it carries the token of a form this daemon rendered (a page of
//    another site cannot read it);
//  - the browser does not say it came from another site (Sec-Fetch-Site,
//    Origin).
// Anything else answers 403 and changes nothing. Each action made is
// logged as DASHBOARD_ACTION with the operator's name.
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "core/duration.hpp"
#include "core/errors.hpp"
#include "core/job_status.hpp"
#include "core/log.hpp"
#include "http/html.hpp"
#include "http/pages.hpp"
#include "http/routes.hpp"
#include "store/browse_query.hpp"
#include "store/job_store.hpp"
#include "store/schedule_store.hpp"

namespace jobd::http {
namespace {

constexpr std::size_t kMaxReason = 1000;
// The most jobs one retry-failed from the dashboard retries: its batches
// run on the dashboard's connection, before the pages queued behind them.
constexpr std::int64_t kMostFromTheDashboard = 10000;

constexpr OperatorAction kActions[] = {OperatorAction::kRetry, OperatorAction::kSuspend,
                                       OperatorAction::kResume, OperatorAction::kCancel};

struct ActionPath {
  std::int64_t id = 0;
  OperatorAction action = OperatorAction::kRetry;
};

// /job/<id>/<action>.
std::optional<ActionPath> parseActionPath(const std::string& path) {
  const std::string prefix = "/job/";
  if (path.rfind(prefix, 0) != 0) {
    return std::nullopt;
  }
  std::size_t slash = path.find('/', prefix.size());
  if (slash == std::string::npos || slash == prefix.size() || slash - prefix.size() > 18) {
    return std::nullopt;
  }
  ActionPath parsed;
  for (std::size_t i = prefix.size(); i < slash; ++i) {
    if (std::isdigit(static_cast<unsigned char>(path[i])) == 0) {
      return std::nullopt;
    }
    parsed.id = parsed.id * 10 + (path[i] - '0');
  }
  const std::string name = path.substr(slash + 1);
  for (OperatorAction action : kActions) {
    if (name == actionName(action)) {
      parsed.action = action;
      return parsed;
    }
  }
  return std::nullopt;
}

Response plain(int status, const std::string& body) {
  Response r;
  r.status = status;
  r.body = body;
  return r;
}

Response htmlAnswer(int status, const std::string& title, const std::string& message) {
  Response r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body = messagePage(title, message);
  return r;
}

// Post/Redirect/Get: a reload shows the page, and makes nothing again.
Response seeOther(const std::string& location, const std::string& body) {
  Response r;
  r.status = 303;
  r.headers.emplace_back("Location", location);
  r.body = body;
  return r;
}

// What a failed action's log line says of it.
std::string failureOf(int status) {
  switch (status) {
    case 404:
      return "no such job, pause or schedule";
    case 409:
      return "its status does not allow it";
    case 400:
      return "a bad value";
    case 503:
      return "the database is unreachable, or the commit's outcome is not known";
    default:
      return "an error (see the answer)";
  }
}

// Whether the browser says the request came from a page of this dashboard
// (or says nothing, as curl and older browsers do).
bool fromThisSite(const Request& request) {
  if (!request.fetch_site.empty() && request.fetch_site != "same-origin" &&
      request.fetch_site != "none") {
    return false;
  }
  if (request.origin.empty() || request.origin == "null") {
    return request.origin.empty();
  }
  return request.origin == "http://" + request.host || request.origin == "https://" + request.host;
}

// One line of text of at most kMaxReason bytes.
bool oneLine(const std::string& text) {
  return text.size() <= kMaxReason && std::none_of(text.begin(), text.end(), [](unsigned char c) {
           return c < ' ' || c == 0x7f;
         });
}

// An action on a job type or a schedule (/action/NAME), with its fields.
struct Control {
  std::string name;
  std::string job_type;  // retry-failed, pause, unpause
  std::optional<std::string> target;
  std::string schedule;                   // pause-schedule, resume-schedule
  std::optional<std::string> error_type;  // retry-failed
  std::string since = "24h";              // retry-failed: a time or a duration ago
  std::int64_t limit = store::RetryFailedRequest::kRetryFailedDefault;
  std::string for_;  // pause: a duration, or empty for until unpaused
  std::string reason;
  std::string error;  // why the fields cannot be used
};

constexpr const char* kControls[] = {"retry-failed", "pause", "unpause", "pause-schedule",
                                     "resume-schedule"};

bool onSchedule(const std::string& name) {
  return name == "pause-schedule" || name == "resume-schedule";
}

bool isControlPath(const std::string& path) {
  return path.rfind("/action/", 0) == 0 && std::find(std::begin(kControls), std::end(kControls),
                                                     path.substr(8)) != std::end(kControls);
}

Control parseControl(const std::string& name, const std::string& fields) {
  Control c;
  c.name = name;
  auto field = [&fields](const char* key) {
    std::optional<std::string> value = queryParam(fields, key);
    return value && !value->empty() ? value : std::nullopt;
  };
  c.job_type = field("type").value_or("");
  c.target = field("target");
  c.schedule = field("name").value_or("");
  c.error_type = field("error_type");
  c.since = field("since").value_or(c.since);
  c.for_ = field("for").value_or("");
  c.reason = field("reason").value_or("");
  for (const std::string* text : {&c.job_type, &c.schedule, &c.since, &c.for_, &c.reason}) {
    if (!oneLine(*text)) {
      c.error = "Each field must be one line of at most " + std::to_string(kMaxReason) + " bytes.";
    }
  }
  for (const auto* text : {&c.target, &c.error_type}) {
    if (*text && !oneLine(**text)) {
      c.error = "Each field must be one line of at most " + std::to_string(kMaxReason) + " bytes.";
    }
  }
  if (onSchedule(name) ? c.schedule.empty() : c.job_type.empty()) {
    c.error = onSchedule(name) ? "Which schedule? (name=)" : "Which job type? (type=)";
  }
  // A duration ago, or a time as the CLI takes it (ISO 8601: 2026-12-01,
  // 2026-12-01T09:30:00Z); not PostgreSQL's other words for times.
  std::optional<Duration> ago = parseDuration(c.since);
  const bool iso = c.since.size() >= 10 && std::isdigit(static_cast<unsigned char>(c.since[0])) &&
                   c.since[4] == '-' && c.since[7] == '-';
  if (!(ago && ago->count() > 0) && !iso) {
    c.error = "'since' must be a duration ago such as 24h, or a time such as 2026-12-01T09:30Z.";
  }
  if (std::optional<std::string> limit = field("limit")) {
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(limit->c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || n < 1 || n > kMostFromTheDashboard) {
      c.error = "The limit must be a number from 1 to " + std::to_string(kMostFromTheDashboard) +
                " (jobd retry-failed takes more).";
    } else {
      c.limit = n;
    }
  }
  if (!c.for_.empty() && (!parseDuration(c.for_) || parseDuration(c.for_)->count() <= 0)) {
    c.error = "'for' must be a duration such as 30m or 2h, or empty.";
  }
  return c;
}

// What a control's log lines name, by field ("-" for none): the fields of
// its action only.
struct Subject {
  std::string type = "-";
  std::string target = "-";
  std::string error_type = "-";
  std::string schedule = "-";
};

Subject subjectOf(const Control& c) {
  Subject s;
  if (onSchedule(c.name)) {
    s.schedule = c.schedule;
    return s;
  }
  s.type = c.job_type;
  if (c.target && c.name != "retry-failed") {
    s.target = *c.target;
  }
  if (c.error_type && c.name == "retry-failed") {
    s.error_type = *c.error_type;
  }
  return s;
}

std::string hidden(const char* name, const std::string& value) {
  return std::string("<input type=\"hidden\" name=\"") + name + "\" value=\"" + escapeHtml(value) +
         "\">";
}

// The confirmation of a control: what it does, its fields, the button.
std::string controlPage(const Control& c, const std::string& csrf_token) {
  std::string body;
  std::string title;
  std::string form =
      "<form method=\"post\" action=\"/action/" + c.name + "\">" + hidden("csrf", csrf_token);
  const std::string type_html = html::typeLink(c.job_type);
  const std::string target_html =
      c.target ? " target <code>" + escapeHtml(*c.target) + "</code>" : std::string();
  if (c.name == "retry-failed") {
    title = "retry failed jobs of " + c.job_type + "?";
    body = "<p>Every FAILED job of " + type_html +
           (c.error_type ? " whose error type is <code>" + escapeHtml(*c.error_type) + "</code>"
                         : std::string()) +
           " that failed from the time below on goes back to WAITING, oldest first, at most the "
           "limit, in transactions of " +
           std::to_string(store::JobStore::kRetryBatch) +
           " (as <code>jobd retry-failed</code>).</p>";
    form += hidden("type", c.job_type) + (c.error_type ? hidden("error_type", *c.error_type) : "") +
            "<p><label>since (a duration ago, or a UTC time) <input name=\"since\" value=\"" +
            escapeHtml(c.since) +
            "\" size=\"24\"></label></p><p><label>at most <input name=\"limit\" value=\"" +
            std::to_string(c.limit) + "\" size=\"8\" inputmode=\"numeric\"></label> jobs (" +
            std::to_string(kMostFromTheDashboard) + " at most from here)</p>";
  } else if (c.name == "pause") {
    title = "pause " + c.job_type + "?";
    body = "<p>No daemon claims " + type_html + "&#39;s jobs" + target_html +
           " from now on; running jobs finish (as <code>jobd pause</code>).</p>";
    form += hidden("type", c.job_type) + (c.target ? hidden("target", *c.target) : "") +
            "<p><label>for (empty: until unpaused) <input name=\"for\" value=\"" +
            escapeHtml(c.for_) +
            "\" size=\"10\"></label></p><p><label>reason <input name=\"reason\" value=\"" +
            escapeHtml(c.reason) + "\" size=\"40\"></label></p>";
  } else if (c.name == "unpause") {
    title = "unpause " + c.job_type + "?";
    body = "<p>Every daemon claims " + type_html + "&#39;s jobs" + target_html +
           " again at once (as <code>jobd unpause</code>).</p>";
    form += hidden("type", c.job_type) + (c.target ? hidden("target", *c.target) : "");
  } else {
    bool pause = c.name == "pause-schedule";
    title = std::string(pause ? "pause" : "resume") + " schedule " + c.schedule + "?";
    body =
        "<p>Schedule <code>" + escapeHtml(c.schedule) + "</code> " +
        (pause ? "makes no job until it is resumed" : "makes its jobs again from its next tick") +
        " (as <code>jobd schedule " + (pause ? "pause" : "resume") + "</code>).</p>";
    form += hidden("name", c.schedule);
  }
  form += "<p><button type=\"submit\" autofocus>" + escapeHtml(title.substr(0, title.size() - 1)) +
          "</button> <a href=\"" +
          (c.job_type.empty() ? std::string("/") : "/type/" + urlEncode(c.job_type)) +
          "\">back</a></p></form>";
  return html::page(title, body + form);
}

// Why a POST must change nothing (a 403), or nullopt: it came from
// another site, or without the token of a form this daemon rendered.
std::optional<std::string> refusal(const Request& request, const std::string& csrf_token) {
  if (!fromThisSite(request)) {
    return "a request from another site";
  }
  std::optional<std::string> token = queryParam(request.body, "csrf");
  if (!token || !sameSecret(*token, csrf_token)) {
    return "no valid form token";
  }
  return std::nullopt;
}

Response refused(const std::string& reason) {
  return htmlAnswer(403, "forbidden",
                    reason == "no valid form token"
                        ? "The form's token is missing or stale (the daemon restarted?): open the "
                          "page again."
                        : "This action did not come from the dashboard's page.");
}

}  // namespace

bool isActionPath(const std::string& path) {
  return parseActionPath(path).has_value() || isControlPath(path);
}

nlohmann::json allowedActions(const nlohmann::json& job) {
  nlohmann::json names = nlohmann::json::array();
  std::optional<JobStatus> status = job.contains("status") && job["status"].is_number_integer()
                                        ? statusFromValue(job["status"].get<int>())
                                        : std::nullopt;
  if (!status) {
    return names;
  }
  for (OperatorAction action : kActions) {
    if (operatorMayApply(action, *status)) {
      names.push_back(std::string(actionName(action)));
    }
  }
  return names;
}

Response HttpRoutes::act(const std::function<Response(pqxx::connection&)>& action) {
  try {
    if (db_.repository() == nullptr) {
      return htmlAnswer(503, "database unreachable", "The database cannot be reached.");
    }
    return action(*db_.connection());
  } catch (const NotFoundError& e) {
    return htmlAnswer(404, "not found", e.what());
  } catch (const TransitionError& e) {
    return htmlAnswer(409, "not done", e.what());
  } catch (const UsageError& e) {
    return htmlAnswer(400, "bad request", e.what());
  } catch (const pqxx::in_doubt_error& e) {
    db_.connectionLost(errorLine(e.what()));
    return htmlAnswer(503, "not known",
                      "The connection was lost during the commit: the action may have been made. "
                      "Open the page again before you repeat it.");
  } catch (const pqxx::broken_connection& e) {
    db_.connectionLost(errorLine(e.what()));
    return htmlAnswer(503, "database unreachable", errorLine(e.what()));
  } catch (const pqxx::data_exception& e) {
    return htmlAnswer(400, "bad request", errorLine(e.what()));
  } catch (const std::exception& e) {
    return htmlAnswer(500, "error", errorLine(e.what()));
  }
}

void HttpRoutes::handleAction(const Request& request, const DashboardAccess& access,
                              const std::function<void(Response)>& respond) {
  const bool control = isControlPath(request.path);
  std::optional<ActionPath> target = parseActionPath(request.path);
  if (!target && !control) {
    respond(plain(request.method == "POST" ? 405 : 404,
                  "no such action; try POST /job/ID/retry|suspend|resume|cancel or "
                  "/action/retry-failed|pause|unpause|pause-schedule|resume-schedule\n"));
    return;
  }
  if (access.secret.empty()) {
    respond(htmlAnswer(403, "forbidden",
                       "Actions need an operator who signs in: set dashboard_password_file."));
    return;
  }
  if (control) {
    handleControl(request, respond);
    return;
  }
  const std::int64_t id = target->id;
  const OperatorAction action = target->action;
  const std::string name(actionName(action));
  if (request.method != "POST") {
    const std::string token = csrf_token_;
    page(
        [id, name, token](pqxx::connection& conn) -> std::optional<std::string> {
          std::optional<nlohmann::json> job = store::JobStore(conn).show(id);
          if (!job) {
            return std::nullopt;
          }
          (*job)["now"] = store::databaseNow(conn);
          (*job)["actions"] = allowedActions(*job);
          return actionPage(*job, name, token);
        },
        "no job with id " + std::to_string(id), respond);
    return;
  }
  if (std::optional<std::string> reason = refusal(request, csrf_token_)) {
    logs::warn("DASHBOARD_ACTION_REFUSED peer={} job={} action={}: {}", request.peer, id, name,
               *reason);
    respond(refused(*reason));
    return;
  }
  const std::string who = operatorName(request.authorization);
  // The CLI's --reason and its default; a reason is one line of text.
  std::string reason = queryParam(request.body, "reason").value_or("cancelled by operator");
  if (!oneLine(reason)) {
    respond(htmlAnswer(
        400, "bad request",
        "The reason must be one line of at most " + std::to_string(kMaxReason) + " bytes."));
    return;
  }
  const std::string peer = request.peer;
  db_.post([this, id, action, name, who, reason, peer, respond] {
    Response r = act([&](pqxx::connection& conn) {
      store::TransitionResult done = store::JobStore(conn).apply(id, action, reason);
      logs::info("DASHBOARD_ACTION operator={} peer={} job={} action={} from={} to={}", who, peer,
                 id, name, statusName(done.from), statusName(done.to));
      return seeOther("/job/" + std::to_string(id),
                      "job " + std::to_string(id) + ": " + std::string(statusName(done.from)) +
                          " -> " + std::string(statusName(done.to)) + " (" + name + ")\n");
    });
    if (r.status != 303) {
      logs::warn("DASHBOARD_ACTION_FAILED operator={} peer={} job={} action={} status={}: {}", who,
                 peer, id, name, r.status, failureOf(r.status));
    }
    boost::asio::post(io_, [respond, r = std::move(r)]() mutable { respond(std::move(r)); });
  });
}

void HttpRoutes::handleControl(const Request& request,
                               const std::function<void(Response)>& respond) {
  const bool post = request.method == "POST";
  const std::string name = request.path.substr(8);
  if (post) {
    if (std::optional<std::string> reason = refusal(request, csrf_token_)) {
      logs::warn("DASHBOARD_ACTION_REFUSED peer={} action={}: {}", request.peer, name, *reason);
      respond(refused(*reason));
      return;
    }
  }
  Control c = parseControl(name, post ? request.body : request.query);
  if (!c.error.empty()) {
    respond(htmlAnswer(400, "bad request", c.error));
    return;
  }
  if (!post) {
    Response r;
    r.content_type = "text/html; charset=utf-8";
    r.body = controlPage(c, csrf_token_);
    respond(std::move(r));
    return;
  }
  const Subject subject = subjectOf(c);
  const std::string who = operatorName(request.authorization);
  const std::string peer = request.peer;
  db_.post([this, c, who, peer, subject, respond] {
    Response r = act([&](pqxx::connection& conn) {
      std::string done;
      std::string location = "/type/" + urlEncode(c.job_type);
      if (c.name == "retry-failed") {
        store::RetryFailedRequest retry;
        retry.job_type = c.job_type;
        retry.error_type = c.error_type;
        std::optional<Duration> ago = parseDuration(c.since);
        if (ago && ago->count() > 0) {
          retry.since_ago = ago;
        } else {
          retry.since = c.since;
        }
        retry.limit = c.limit;
        std::int64_t n = store::JobStore(conn).retryFailed(retry);
        done = std::to_string(n);
        location += "?retried=" + std::to_string(n);
      } else if (c.name == "pause") {
        store::PauseRequest pause;
        pause.job_type = c.job_type;
        pause.target = c.target;
        pause.reason = c.reason;
        pause.paused_by = who + " (dashboard)";
        if (!c.for_.empty()) {
          pause.for_ = parseDuration(c.for_);
        }
        done = store::JobStore(conn).pause(pause) ? "replaced" : "paused";
      } else if (c.name == "unpause") {
        if (!store::JobStore(conn).unpause(c.job_type, c.target)) {
          throw NotFoundError(c.job_type + (c.target ? " target " + *c.target : "") +
                              " is not paused");
        }
        done = "unpaused";
      } else {
        bool pause = c.name == "pause-schedule";
        if (!store::ScheduleStore(conn).setPaused(c.schedule, pause)) {
          throw NotFoundError("no schedule named " + c.schedule);
        }
        done = pause ? "paused" : "resumed";
        location = "/";
      }
      logs::info(
          "DASHBOARD_ACTION operator={} peer={} action={} type={} target={} error_type={} "
          "schedule={} result={}",
          who, peer, c.name, subject.type, subject.target, subject.error_type, subject.schedule,
          done);
      return seeOther(location, c.name + ": " + done + "\n");
    });
    if (r.status != 303) {
      logs::warn(
          "DASHBOARD_ACTION_FAILED operator={} peer={} action={} type={} target={} error_type={} "
          "schedule={} status={}: {}",
          who, peer, c.name, subject.type, subject.target, subject.error_type, subject.schedule,
          r.status, failureOf(r.status));
    }
    boost::asio::post(io_, [respond, r = std::move(r)]() mutable { respond(std::move(r)); });
  });
}

}  // namespace jobd::http
