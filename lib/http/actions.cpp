// The dashboard's actions on a job (retry, suspend, resume, cancel): what
// `jobd retry|suspend|resume|cancel ID` does, through the same
// store::JobStore::apply, for an operator who signed in. A GET of
// /job/ID/ACTION asks to confirm; the form it shows POSTs back with this
// daemon's token. A POST is made only when:
//  - the dashboard has a password (dashboard_password_file) and the
//    request carries it: the operator has a name for the log;
//  - it carries the token of a form this daemon rendered (a page of
//    another site cannot read it);
//  - the browser does not say it came from another site (Sec-Fetch-Site,
//    Origin).
// Anything else answers 403 and changes nothing. Each action made is
// logged as DASHBOARD_ACTION with the operator's name.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/errors.hpp"
#include "core/job_status.hpp"
#include "core/log.hpp"
#include "http/pages.hpp"
#include "http/routes.hpp"
#include "store/browse_query.hpp"
#include "store/job_store.hpp"

namespace jobd::http {
namespace {

constexpr std::size_t kMaxReason = 1000;

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

// What a failed action's log line says of it.
std::string failureOf(int status) {
  switch (status) {
    case 404:
      return "no such job";
    case 409:
      return "its status does not allow it";
    case 400:
      return "a value the database cannot store";
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

}  // namespace

bool isActionPath(const std::string& path) {
  return parseActionPath(path).has_value();
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

void HttpRoutes::handleAction(const Request& request, const DashboardAccess& access,
                              const std::function<void(Response)>& respond) {
  std::optional<ActionPath> target = parseActionPath(request.path);
  if (!target) {
    respond(plain(request.method == "POST" ? 405 : 404,
                  "no such action; try POST /job/ID/retry|suspend|resume|cancel\n"));
    return;
  }
  if (access.secret.empty()) {
    respond(htmlAnswer(403, "forbidden",
                       "Actions need an operator who signs in: set dashboard_password_file."));
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
  if (!fromThisSite(request)) {
    logs::warn("DASHBOARD_ACTION_REFUSED peer={} job={} action={}: a request from another site",
               request.peer, id, name);
    respond(htmlAnswer(403, "forbidden", "This action did not come from the dashboard's page."));
    return;
  }
  std::optional<std::string> token = queryParam(request.body, "csrf");
  if (!token || !sameSecret(*token, csrf_token_)) {
    logs::warn("DASHBOARD_ACTION_REFUSED peer={} job={} action={}: no valid form token",
               request.peer, id, name);
    respond(htmlAnswer(403, "forbidden",
                       "The form's token is missing or stale (the daemon restarted?): open the "
                       "job's page again."));
    return;
  }
  const std::string who = operatorName(request.authorization);
  // The CLI's --reason and its default; a reason is one line of text.
  std::string reason = queryParam(request.body, "reason").value_or("cancelled by operator");
  if (reason.size() > kMaxReason || std::any_of(reason.begin(), reason.end(), [](unsigned char c) {
        return c < ' ' || c == 0x7f;
      })) {
    respond(htmlAnswer(
        400, "bad request",
        "The reason must be one line of at most " + std::to_string(kMaxReason) + " bytes."));
    return;
  }
  const std::string peer = request.peer;
  db_.post([this, id, action, name, who, reason, peer, respond] {
    Response r;
    try {
      if (db_.repository() == nullptr) {
        r = htmlAnswer(503, "database unreachable", "The database cannot be reached.");
      } else {
        store::TransitionResult done = store::JobStore(*db_.connection()).apply(id, action, reason);
        logs::info("DASHBOARD_ACTION operator={} peer={} job={} action={} from={} to={}", who, peer,
                   id, name, statusName(done.from), statusName(done.to));
        // Post/Redirect/Get: a reload shows the job, and makes nothing again.
        r.status = 303;
        r.headers.emplace_back("Location", "/job/" + std::to_string(id));
        r.body = "job " + std::to_string(id) + ": " + std::string(statusName(done.from)) + " -> " +
                 std::string(statusName(done.to)) + " (" + name + ")\n";
      }
    } catch (const NotFoundError& e) {
      r = htmlAnswer(404, "not found", e.what());
    } catch (const TransitionError& e) {
      r = htmlAnswer(409, "not done", e.what());
    } catch (const pqxx::in_doubt_error& e) {
      db_.connectionLost(errorLine(e.what()));
      r = htmlAnswer(503, "not known",
                     "The connection was lost during the commit: the action may have been made. "
                     "Open the job's page again before you repeat it.");
    } catch (const pqxx::broken_connection& e) {
      db_.connectionLost(errorLine(e.what()));
      r = htmlAnswer(503, "database unreachable", errorLine(e.what()));
    } catch (const pqxx::data_exception& e) {
      r = htmlAnswer(400, "bad request", errorLine(e.what()));
    } catch (const std::exception& e) {
      r = htmlAnswer(500, "error", errorLine(e.what()));
    }
    if (r.status != 303) {
      logs::warn("DASHBOARD_ACTION_FAILED operator={} peer={} job={} action={} status={}: {}", who,
                 peer, id, name, r.status, failureOf(r.status));
    }
    boost::asio::post(io_, [respond, r = std::move(r)]() mutable { respond(std::move(r)); });
  });
}

}  // namespace jobd::http
