#include "reporter.hpp"

#include <unistd.h>

#include <algorithm>

#include "core/log.hpp"
#include "store/daemon_registry.hpp"
#include "systemd/notify.hpp"

namespace jobd::cli {

void Reporter::listen(runtime::Metrics& metrics, const std::string& conninfo) {
  const config::DaemonSettings& d = view_.config->daemon();
  if (!view_.serve || (d.metrics_listen.empty() && d.dashboard_listen.empty())) {
    return;
  }
  http::HttpRoutes::Sources sources{
      [this] { return services_->gauges(view_.draining); }, [this] { return view_.draining; },
      [this] { return services_->servedJobTypes(); },
      [this](const std::string& job_type) { return services_->servedSection(job_type); }};
  routes_ =
      std::make_unique<http::HttpRoutes>(io_, metrics, std::move(sources), conninfo, view_.owner);
  if (!d.metrics_listen.empty()) {
    metrics_http_ = std::make_unique<http::HttpServer>(
        io_, "metrics_listen",
        [this](const http::Request& request, const std::function<void(http::Response)>& respond) {
          routes_->handleMetrics(request, respond);
        });
    std::string address = metrics_http_->start(d.metrics_listen);
    logs::info("HTTP_LISTENING address={} paths=/metrics,/healthz", address);
  }
  if (!d.dashboard_listen.empty()) {
    dashboard_access_ = http::dashboardAccess(d);
    dashboard_http_ = std::make_unique<http::HttpServer>(
        io_, "dashboard_listen",
        [this](const http::Request& request, const std::function<void(http::Response)>& respond) {
          routes_->handleDashboard(request, dashboard_access_, respond);
        });
    std::string address = dashboard_http_->start(d.dashboard_listen);
    logs::info(
        "DASHBOARD_LISTENING address={} "
        "paths=/,/type/TYPE,/jobs,/search,/job/ID,/job/ID/ACTION,/action/NAME,/oops/ID,/healthz "
        "auth={}",
        address, dashboard_access_.secret.empty() ? "none" : "password");
  }
}

void Reporter::start(runtime::Services& services) {
  services_ = &services;
  scheduleSummary();
  scheduleStatus();
  pingWatchdog();
}

// STATUS= every few seconds, with the number of waiting jobs counted on
// the database thread, up to a cap so that it stays cheap.
void Reporter::scheduleStatus() {
  status_timer_.expires_after(std::chrono::seconds(5));
  status_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    heartbeat();
    services_->sleeper().check();
    services_->countWaiting(
        metrics_http_ ? services_->servedJobTypes() : std::vector<std::string>{},
        [this](std::optional<std::int64_t> waiting) {
          std::string line = statusLine();
          if (waiting) {
            line += ", waiting " + std::to_string(*waiting) +
                    (*waiting >= runtime::Services::kWaitingCap ? "+" : "");
          }
          systemd::notifyStatus((view_.draining ? "draining: " : "") + line);
        });
    scheduleStatus();
  });
}

// This daemon's jobd.daemon row: written at READY and every few seconds
// after, so that `jobd status` and the dashboard list it even when idle.
void Reporter::heartbeat() {
  if (!view_.serve) {
    return;
  }
  store::DaemonBeat beat{view_.owner,
                         view_.hostname,
                         static_cast<int>(getpid()),
                         JOBD_VERSION,
                         {},
                         view_.config->daemon().workers,
                         services_->producer().running(),
                         view_.draining};
  for (const runtime::ServedSection& served : view_.sections) {
    beat.sections.push_back(served.name);
  }
  std::sort(beat.sections.begin(), beat.sections.end());
  services_->heartbeat(std::move(beat));
}

void Reporter::pingWatchdog() {
  std::optional<std::chrono::microseconds> interval = systemd::watchdogInterval();
  if (!interval) {
    return;
  }
  systemd::notifyWatchdog();
  watchdog_timer_.expires_after(*interval / 2);
  watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      pingWatchdog();
    }
  });
}

void Reporter::scheduleSummary() {
  summary_timer_.expires_after(std::chrono::minutes(1));
  summary_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    logs::info("DAEMON_SUMMARY {}", statusLine());
    systemd::notifyStatus(statusLine());
    scheduleSummary();
  });
}

void Reporter::stopLoop() {
  if (metrics_http_) {
    metrics_http_->stop();
  }
  if (dashboard_http_) {
    dashboard_http_->stop();
  }
  status_timer_.cancel();
  summary_timer_.cancel();
  watchdog_timer_.cancel();
}

void Reporter::stop() {
  if (routes_) {
    routes_->stop();
  }
}

}  // namespace jobd::cli
