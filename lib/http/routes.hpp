// HttpRoutes: what the daemon answers (SPEC §9). On `metrics_listen`:
//   GET /metrics   the Prometheus text format, from Metrics and the gauges
//                  the io thread reads at the moment of the scrape
//   GET /healthz   200 while the loop turns and the daemon serves, 503
//                  while it drains
// On `dashboard_listen`, once the Host header and the password pass
// (DashboardAccess), /healthz and:
//   GET /          the dashboard; /?live=1 its live part alone
//   GET /type/TYPE a job type: its section's settings, counts, running
//                  jobs, failures by error type
//   GET /jobs?type=&status=&after=  a type's jobs of one status, a page
//                  at a time by keyset
//   GET /search?q= a job by id (a redirect to its page) or a target's jobs
//   GET /job/ID, /oops/ID
//   GET, POST /job/ID/retry|suspend|resume|cancel  an operator's action:
//                  GET asks to confirm, POST (authenticated, with the
//                  page's token) makes it
//   GET, POST /action/retry-failed|pause|unpause|pause-schedule|
//                  resume-schedule  the same for a job type or a schedule
// Called on the io thread by HttpServer. The dashboard's SQL runs on a
// DatabaseThread of its own ("jobd dashboard"), so that a slow page never
// delays claims or outcomes, and its answer is posted back to the io
// thread. Each page says how long it took in a Server-Timing header.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "http/http_server.hpp"
#include "runtime/database_thread.hpp"
#include "runtime/metrics.hpp"

namespace jobd::http {

// Who may see the dashboard, which shows payloads and tracebacks.
struct DashboardAccess {
  // Host header values (without the port) it answers to; others get 421,
  // so that a DNS-rebinding page cannot read it through a browser.
  std::vector<std::string> hosts;
  // The password (HTTP Basic, any user name) or bearer token; empty: none.
  std::string secret;
};

// From the [jobd] settings: the Host names the dashboard answers to
// (dashboard_host, else its own listen host and the loopback names) and
// the password from dashboard_password_file (its first line). Throws when
// the file cannot be read: a dashboard meant to be protected never starts
// open.
DashboardAccess dashboardAccess(const config::DaemonSettings& d);

// The Host header's name without its port, lower-cased ("[::1]" stays
// bracketed).
std::string hostName(const std::string& host_header);
// Whether an Authorization header carries `secret` (Basic or Bearer),
// compared in constant time.
bool authorized(const std::string& authorization, const std::string& secret);
// Whether `given` is `secret`, compared in constant time.
bool sameSecret(const std::string& given, const std::string& secret);
// Who an authorized request is, for the log: Basic's user name (printable
// ASCII, 64 characters at most; "operator" when empty), or "token".
std::string operatorName(const std::string& authorization);
// /job/ID/retry, /suspend, /resume or /cancel, or /action/NAME.
bool isActionPath(const std::string& path);
// The actions an operator may apply to a job shown by JobStore::show, by
// name (SPEC §4.3).
nlohmann::json allowedActions(const nlohmann::json& job);

class HttpRoutes {
 public:
  // What the io thread knows; each is called on the io thread.
  struct Sources {
    std::function<runtime::Metrics::Gauges()> gauges;
    std::function<bool()> draining;
    std::function<std::vector<std::string>()> job_types;  // the served ones
    // The section that serves this job type here, if one does.
    std::function<std::optional<config::SectionConfig>(const std::string&)> section_of;
  };

  HttpRoutes(boost::asio::io_context& io, const runtime::Metrics& metrics, Sources sources,
             const std::string& conninfo, const std::string& owner);
  ~HttpRoutes();
  HttpRoutes(const HttpRoutes&) = delete;
  HttpRoutes& operator=(const HttpRoutes&) = delete;

  // metrics_listen's answers.
  void handleMetrics(const Request& request, const std::function<void(Response)>& respond);
  // dashboard_listen's answers.
  void handleDashboard(const Request& request, const DashboardAccess& access,
                       const std::function<void(Response)>& respond);
  // Joins the dashboard's database thread; pages still queued get no answer.
  void stop();
  // The token each action's form carries.
  const std::string& csrfToken() const { return csrf_token_; }

 private:
  // Runs `query` on the dashboard's connection, then renders its result on
  // the io thread; a database error becomes a 503 page.
  void page(const std::function<std::optional<std::string>(pqxx::connection&)>& query,
            const std::string& not_found, const std::function<void(Response)>& respond);
  // The same for an answer that is more than a page (a redirect): a
  // database error still becomes a 503 or 500 page, a value PostgreSQL
  // cannot read (SQLSTATE class 22) or a bad cursor a 400.
  void answer(const std::function<Response(pqxx::connection&)>& query,
              const std::function<void(Response)>& respond);
  // /job/ID/ACTION (http/actions.cpp): GET asks to confirm; POST, from an
  // authenticated operator with this daemon's token and from the
  // dashboard's own pages, makes the transition `jobd ACTION ID` makes.
  void handleAction(const Request& request, const DashboardAccess& access,
                    const std::function<void(Response)>& respond);
  // On the dashboard's database thread: runs an action on its connection,
  // and answers with its response or with the page of what went wrong
  // (404, 409, 400, 503 when the database is away or the commit's outcome
  // is not known, 500).
  Response act(const std::function<Response(pqxx::connection&)>& action);
  // /action/NAME: an action on a job type or a schedule (actions.cpp),
  // once handleAction has checked that actions are on.
  void handleControl(const Request& request, const std::function<void(Response)>& respond);

  static constexpr int kMaxFailedLogins = 10;
  static constexpr std::chrono::seconds kFailedLoginWindow{60};
  static constexpr std::size_t kMaxTrackedPeers = 10000;
  struct FailedLogins {
    std::chrono::steady_clock::time_point since;
    int count = 0;
  };

  boost::asio::io_context& io_;
  const runtime::Metrics& metrics_;
  Sources sources_;
  runtime::DatabaseThread db_;
  std::map<std::string, FailedLogins> failed_logins_;  // by client address; io thread
  std::string csrf_token_;
};

}  // namespace jobd::http
