// Reporter: what a running daemon tells the world on its own, on the io
// loop: STATUS= every 5 s with the waiting jobs counted (SPEC §8), the
// jobd.daemon heartbeat row with it (`jobd serve` only), DAEMON_SUMMARY
// every minute, and WATCHDOG=1 every half WATCHDOG_USEC, from the loop
// itself, so that a loop that stops turning stops the pings and systemd
// restarts the service (a database outage does not stop them). Also the
// HTTP listeners (/metrics and /healthz; the dashboard on its own address).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "http/http_server.hpp"
#include "http/routes.hpp"
#include "runtime/asio.hpp"
#include "runtime/services.hpp"

namespace jobd::cli {

// What the reporter reads of the controller's state, on the io thread.
struct ReporterView {
  const std::shared_ptr<const config::Config>& config;
  const std::vector<runtime::ServedSection>& sections;
  const bool& draining;
  std::string owner;
  std::string hostname;
  bool serve = true;  // `jobd serve` (heartbeats), not `jobd run-once`
};

class Reporter {
 public:
  Reporter(boost::asio::io_context& io, ReporterView view)
      : io_(io),
        view_(std::move(view)),
        status_timer_(io),
        summary_timer_(io),
        watchdog_timer_(io) {}

  // Step 0 of the launch: the listeners, so that a port already taken stops
  // the start before anything runs (throws). They answer once the loop
  // turns, and read the services given to start().
  void listen(runtime::Metrics& metrics, const std::string& conninfo);
  // The timers, once the services run.
  void start(runtime::Services& services);
  // Writes the heartbeat row now (READY).
  void heartbeat();
  std::string statusLine() const { return services_->statusLine(); }
  // The end of the io loop: listeners closed, timers cancelled.
  void stopLoop();
  // After the loop: the dashboard's database thread.
  void stop();

 private:
  void scheduleStatus();
  void scheduleSummary();
  void pingWatchdog();

  boost::asio::io_context& io_;
  ReporterView view_;
  runtime::Services* services_ = nullptr;
  boost::asio::steady_timer status_timer_;
  boost::asio::steady_timer summary_timer_;
  boost::asio::steady_timer watchdog_timer_;
  std::unique_ptr<http::HttpRoutes> routes_;  // behind both listeners, whichever are set
  std::unique_ptr<http::HttpServer> metrics_http_;
  std::unique_ptr<http::HttpServer> dashboard_http_;
  http::DashboardAccess dashboard_access_;
};

}  // namespace jobd::cli
