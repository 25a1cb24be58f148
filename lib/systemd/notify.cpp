#include "systemd/notify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

namespace jobd::systemd {

std::string statusText(const std::string& status) {
  // A newline would end the assignment and start another: an error message
  // quoted in STATUS= could add lines (even READY=1). One line, bounded.
  std::string line = status.substr(0, 1024);
  for (char& c : line) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return line;
}

void notifyReady(const std::string& status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", statusText(status).c_str());
}

void notifyReloading() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  unsigned long long usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                            static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
  sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

void notifyStopping() {
  sd_notify(0, "STOPPING=1");
}

void notifyStatus(const std::string& status) {
  sd_notifyf(0, "STATUS=%s", statusText(status).c_str());
}

void notifyWatchdog() {
  sd_notify(0, "WATCHDOG=1");
}

void notifyExtendTimeout(std::chrono::microseconds more) {
  sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", static_cast<unsigned long long>(more.count()));
}

std::optional<std::chrono::microseconds> watchdogInterval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    return std::chrono::microseconds(usec);
  }
  return std::nullopt;
}

}  // namespace jobd::systemd
