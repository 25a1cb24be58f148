#include "http/routes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <random>

#include "core/errors.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "http/pages.hpp"
#include "store/browse_query.hpp"
#include "store/dashboard_query.hpp"
#include "store/job_store.hpp"

namespace jobd::http {
namespace {

constexpr const char* kHtml = "text/html; charset=utf-8";

// A section's settings as the type page shows them; durations in ms.
nlohmann::json sectionJson(const config::SectionConfig& c) {
  const char* runners[] = {"thread", "process", "python"};
  return {{"section", c.name},
          {"handler", c.handler},
          {"runner", runners[static_cast<int>(c.runner)]},
          {"concurrency", c.concurrency},
          {"timeout_ms", c.timeout.count()},
          {"kill_grace_ms", c.kill_grace.count()},
          {"lease_duration_ms", c.lease_duration.count()},
          {"max_retries", c.max_retries ? nlohmann::json(*c.max_retries) : nlohmann::json()},
          {"retry_delay_ms", c.retry_delay.count()},
          {"retry_backoff",
           c.retry_backoff == config::RetryBackoff::kExponential ? "exponential" : "fixed"},
          {"retry_delay_max_ms", c.retry_delay_max.count()},
          {"keep_finished_ms", c.keep_finished.count()},
          {"claim_ahead", c.claim_ahead},
          {"limit_key", c.limit_key},
          {"limit_concurrency", c.limit_concurrency},
          {"limit_rate", c.limit_rate},
          {"limit_rate_period_ms", c.limit_rate_period.count()},
          {"enabled", c.enabled}};
}

bool allDigits(const std::string& s) {
  return !s.empty() && s.size() < 19 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

double millisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// RFC 4648 base64, as HTTP Basic sends it; stops at the first byte that
// is not of the alphabet.
std::string base64Decoded(const std::string& in) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned value = 0;
  int bits = 0;
  for (char c : in) {
    std::size_t at = kAlphabet.find(c);
    if (at == std::string::npos) {
      break;
    }
    value = (value << 6) | static_cast<unsigned>(at);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((value >> bits) & 0xff);
    }
  }
  return out;
}

Response text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// A job id: 1 to 19 digits.
std::optional<std::int64_t> jobId(const std::string& text) {
  if (text.empty() || text.size() > 18 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(text);
}

}  // namespace

HttpRoutes::HttpRoutes(boost::asio::io_context& io, const runtime::Metrics& metrics,
                       Sources sources, const std::string& conninfo, const std::string& owner)
    : io_(io),
      metrics_(metrics),
      sources_(std::move(sources)),
      // An action's commit waits for its flush, as the CLI's does.
      db_(conninfo, owner, "jobd dashboard", {runtime::Commits::kDurable}) {
  // The token every action's form carries (and a cross-site page cannot
  // read): new at each start, so a form from before a restart is refused.
  std::random_device random;
  csrf_token_ = hex16((std::uint64_t{random()} << 32) | random()) +
                hex16((std::uint64_t{random()} << 32) | random());
  db_.start();
}

HttpRoutes::~HttpRoutes() {
  stop();
}

void HttpRoutes::stop() {
  db_.stop();
}

DashboardAccess dashboardAccess(const config::DaemonSettings& d) {
  DashboardAccess access;
  access.hosts = d.dashboard_hosts;
  if (access.hosts.empty()) {
    access.hosts = {hostName(d.dashboard_listen), "localhost", "127.0.0.1", "[::1]"};
  }
  if (!d.dashboard_password_file.empty()) {
    std::ifstream in(d.dashboard_password_file);
    std::getline(in, access.secret);
    while (!access.secret.empty() &&
           (access.secret.back() == '\r' || access.secret.back() == ' ')) {
      access.secret.pop_back();
    }
    if (!in && !in.eof()) {
      access.secret.clear();
    }
    if (access.secret.empty()) {
      throw std::runtime_error("dashboard_password_file " + d.dashboard_password_file +
                               ": cannot read a password from its first line");
    }
  }
  return access;
}

std::string hostName(const std::string& host_header) {
  std::string host = host_header;
  for (char& c : host) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::size_t colon = host.rfind(':');
  if (colon != std::string::npos && host.find(']', colon) == std::string::npos) {
    host.resize(colon);
  }
  return host;
}

bool authorized(const std::string& authorization, const std::string& secret) {
  // RFC 9110 §11.1: the scheme is case-insensitive, then one or more spaces.
  std::size_t space = authorization.find(' ');
  if (space == std::string::npos) {
    return false;
  }
  std::string scheme = authorization.substr(0, space);
  for (char& c : scheme) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::size_t start = authorization.find_first_not_of(' ', space);
  std::string credentials = start == std::string::npos ? "" : authorization.substr(start);
  std::string given;
  if (scheme == "bearer") {
    given = credentials;
  } else if (scheme == "basic") {
    std::string decoded = base64Decoded(credentials);
    std::size_t colon = decoded.find(':');
    if (colon == std::string::npos) {
      return false;
    }
    given = decoded.substr(colon + 1);
  } else {
    return false;
  }
  return sameSecret(given, secret);
}

bool sameSecret(const std::string& given, const std::string& secret) {
  // Constant time in the secret's length: every byte is compared.
  unsigned char differ = given.size() == secret.size() ? 0 : 1;
  for (std::size_t i = 0; i < secret.size(); ++i) {
    differ |= static_cast<unsigned char>(secret[i] ^ (i < given.size() ? given[i] : 0));
  }
  return differ == 0;
}

std::string operatorName(const std::string& authorization) {
  std::size_t space = authorization.find(' ');
  std::string scheme = authorization.substr(0, space);
  for (char& c : scheme) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (scheme != "basic" || space == std::string::npos) {
    return "token";
  }
  std::size_t start = authorization.find_first_not_of(' ', space);
  std::string decoded =
      base64Decoded(start == std::string::npos ? "" : authorization.substr(start));
  std::string user;
  for (char c : decoded.substr(0, decoded.find(':'))) {
    // A log line's word: printable ASCII without spaces or quotes.
    if (c > ' ' && c < 0x7f && c != '"' && c != '\\' && user.size() < 64) {
      user += c;
    }
  }
  return user.empty() ? "operator" : user;
}

void HttpRoutes::handleMetrics(const Request& request,
                               const std::function<void(Response)>& respond) {
  const std::string& path = request.path;
  if (request.method == "POST") {
    respond(text(405, "only GET and HEAD here\n"));
    return;
  }
  if (path == "/metrics") {
    Response r = text(200, metrics_.render(sources_.gauges()));
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    respond(std::move(r));
  } else if (path == "/healthz") {
    respond(sources_.draining() ? text(503, "draining\n") : text(200, "ok\n"));
  } else {
    respond(text(404,
                 "no such page; try /metrics or /healthz (the dashboard is on "
                 "dashboard_listen)\n"));
  }
}

void HttpRoutes::handleDashboard(const Request& request, const DashboardAccess& access,
                                 const std::function<void(Response)>& respond) {
  const std::string& path = request.path;
  std::string host = hostName(request.host);
  if (std::find(access.hosts.begin(), access.hosts.end(), host) == access.hosts.end()) {
    respond(
        text(421, "this dashboard does not answer to host '" + host + "' (see dashboard_host)\n"));
    return;
  }
  if (!access.secret.empty()) {
    // Guessing is slow: a client whose last kMaxFailedLogins tries in
    // kFailedLoginWindow all failed is refused until the window has passed.
    auto now = std::chrono::steady_clock::now();
    if (failed_logins_.size() >= kMaxTrackedPeers && failed_logins_.count(request.peer) == 0) {
      failed_logins_.clear();  // bounded memory; a flood of addresses starts over
    }
    FailedLogins& failed = failed_logins_[request.peer];
    if (now - failed.since > kFailedLoginWindow) {
      failed = {now, 0};
    }
    if (failed.count >= kMaxFailedLogins) {
      Response r = text(429, "too many wrong passwords from this address; try again later\n");
      r.headers.emplace_back("Retry-After",
                             std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                failed.since + kFailedLoginWindow - now)
                                                .count() +
                                            1));
      respond(std::move(r));
      return;
    }
    if (!authorized(request.authorization, access.secret)) {
      if (!request.authorization.empty() && ++failed.count == kMaxFailedLogins) {
        logs::warn("DASHBOARD_LOGINS_REFUSED peer={}: {} wrong passwords; refusing it for {} s",
                   request.peer, kMaxFailedLogins,
                   std::chrono::duration_cast<std::chrono::seconds>(kFailedLoginWindow).count());
      }
      // An action is refused outright; a page asks the browser to sign in.
      Response r = request.method == "POST"
                       ? text(403, "an action needs the dashboard's password\n")
                       : text(401, "the dashboard needs its password\n");
      if (request.method != "POST") {
        r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"jobd\", charset=\"UTF-8\"");
      }
      respond(std::move(r));
      return;
    }
    failed_logins_.erase(request.peer);
  }
  if (request.method == "POST" || isActionPath(path)) {
    handleAction(request, access, respond);
    return;
  }
  if (path == "/healthz") {
    respond(sources_.draining() ? text(503, "draining\n") : text(200, "ok\n"));
  } else if (path == "/") {
    bool live = request.query == "live=1";
    std::vector<std::string> types = sources_.job_types();
    const bool actions = !access.secret.empty();
    page(
        [types, live, actions](pqxx::connection& conn) -> std::optional<std::string> {
          nlohmann::json dashboard = store::loadDashboard(conn, types);
          dashboard["actions"] = actions;
          return live ? dashboardLive(dashboard) : dashboardPage(dashboard);
        },
        "", respond);
  } else if (path.rfind("/job/", 0) == 0) {
    std::optional<std::int64_t> id = jobId(path.substr(5));
    if (!id) {
      respond(text(404, "no such page\n"));
      return;
    }
    const bool actionsEnabled = !access.secret.empty();
    page(
        [id, actionsEnabled](pqxx::connection& conn) -> std::optional<std::string> {
          std::optional<nlohmann::json> job = store::JobStore(conn).show(*id);
          if (job) {
            (*job)["now"] = store::databaseNow(conn);
            (*job)["actions"] = actionsEnabled ? allowedActions(*job) : nlohmann::json();
          }
          return job ? std::optional(jobPage(*job)) : std::nullopt;
        },
        "no job with id " + std::to_string(*id), respond);
  } else if (path.rfind("/oops/", 0) == 0) {
    std::string id = path.substr(6);
    page(
        [id](pqxx::connection& conn) -> std::optional<std::string> {
          std::optional<nlohmann::json> oops = store::JobStore(conn).oops(id);
          if (oops) {
            (*oops)["now"] = store::databaseNow(conn);
          }
          return oops ? std::optional(oopsPage(*oops)) : std::nullopt;
        },
        "no OOPS with id " + id, respond);
  } else if (path.rfind("/type/", 0) == 0) {
    // Percent-decoded as a path is: '+' is itself there.
    std::string encoded = path.substr(6);
    for (std::size_t plus = encoded.find('+'); plus != std::string::npos;
         plus = encoded.find('+', plus)) {
      encoded.replace(plus, 1, "%2B");
    }
    std::string job_type = queryParam("t=" + encoded, "t").value_or("");
    std::optional<config::SectionConfig> section = sources_.section_of(job_type);
    nlohmann::json configuration = section ? sectionJson(*section) : nlohmann::json();
    // After a retry-failed action (Post/Redirect/Get), how many it retried.
    std::optional<std::string> retried = queryParam(request.query, "retried");
    const bool actions = !access.secret.empty();
    // The trends' span: 1 h unless 6h or 24h is asked for.
    const std::string span = queryParam(request.query, "span").value_or("1h");
    const int minutes = span == "24h" ? 24 * 60 : span == "6h" ? 6 * 60 : span == "1h" ? 60 : 0;
    if (minutes == 0) {
      respond(text(400, "span must be 1h, 6h or 24h\n"));
      return;
    }
    page(
        [job_type, configuration, retried, actions,
         minutes](pqxx::connection& conn) -> std::optional<std::string> {
          nlohmann::json t = store::loadJobType(conn, job_type, minutes);
          t["actions"] = actions;
          if (retried && allDigits(*retried) && retried->size() <= 18) {
            t["retried"] = std::stoll(*retried);
          }
          return typePage(t, configuration);
        },
        "", respond);
  } else if (path == "/jobs") {
    std::string job_type = queryParam(request.query, "type").value_or("");
    std::string list = queryParam(request.query, "status").value_or("waiting");
    std::string after = queryParam(request.query, "after").value_or("");
    std::optional<store::JobList> which = store::jobListNamed(list);
    if (!which) {
      respond(text(400,
                   "status must be one of waiting, scheduled, running, completed, failed, "
                   "suspended\n"));
      return;
    }
    page(
        [job_type, list, after, which](pqxx::connection& conn) -> std::optional<std::string> {
          return jobsPage(job_type, list, after, store::listJobs(conn, job_type, *which, after));
        },
        "", respond);
  } else if (path == "/search") {
    std::string q = queryParam(request.query, "q").value_or("");
    q.erase(0, q.find_first_not_of(" \t"));
    q.erase(q.find_last_not_of(" \t") + 1);
    answer(
        [q](pqxx::connection& conn) {
          // An id goes to its job's page; a number that is no job's id may
          // be a target (an account, an order).
          Response r;
          if (allDigits(q) && store::jobExists(conn, std::stoll(q))) {
            r.status = 303;
            r.headers.emplace_back("Location", "/job/" + q);
            r.body = "see /job/" + q + "\n";
            return r;
          }
          r.content_type = kHtml;
          r.body = searchPage(q, q.empty() ? nlohmann::json() : store::findByTarget(conn, q));
          return r;
        },
        respond);
  } else {
    respond(text(404, "no such page; try /, /type/TYPE, /jobs, /search, /job/ID or /oops/ID\n"));
  }
}

void HttpRoutes::page(const std::function<std::optional<std::string>(pqxx::connection&)>& query,
                      const std::string& not_found, const std::function<void(Response)>& respond) {
  answer(
      [query, not_found](pqxx::connection& conn) {
        Response r;
        r.content_type = kHtml;
        std::optional<std::string> html = query(conn);
        if (html) {
          r.body = std::move(*html);
        } else {
          r.status = 404;
          r.body = messagePage("not found", not_found);
        }
        return r;
      },
      respond);
}

void HttpRoutes::answer(const std::function<Response(pqxx::connection&)>& query,
                        const std::function<void(Response)>& respond) {
  auto start = std::chrono::steady_clock::now();
  db_.post([this, query, respond, start] {
    Response r;
    r.content_type = kHtml;
    try {
      if (db_.repository() == nullptr) {
        r.status = 503;
        r.body = messagePage("database unreachable",
                             "The database cannot be reached; see the "
                             "daemon's DATABASE_DOWN log line.");
      } else {
        auto queried = std::chrono::steady_clock::now();
        r = query(*db_.connection());
        r.headers.emplace_back(
            "Server-Timing",
            fmt::format("queue;dur={:.1f}, page;dur={:.1f}, total;dur={:.1f}",
                        std::chrono::duration<double, std::milli>(queried - start).count(),
                        millisecondsSince(queried), millisecondsSince(start)));
      }
    } catch (const store::BadCursor& e) {
      r.status = 400;
      r.body = messagePage("bad request", e.what());
    } catch (const pqxx::data_exception& e) {
      // SQLSTATE class 22: a value from the request PostgreSQL cannot read
      // (a page cursor's time, text that is not UTF-8).
      r.status = 400;
      r.body = messagePage("bad request", errorLine(e.what()));
    } catch (const pqxx::broken_connection& e) {
      db_.connectionLost(errorLine(e.what()));
      r.status = 503;
      r.body = messagePage("database unreachable", errorLine(e.what()));
    } catch (const std::exception& e) {
      r.status = 500;
      r.body = messagePage("error", errorLine(e.what()));
    }
    boost::asio::post(io_, [respond, r = std::move(r)]() mutable { respond(std::move(r)); });
  });
}

}  // namespace jobd::http
