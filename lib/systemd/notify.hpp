// sd_notify messages to systemd (SPEC §8). Each call does nothing when the
// service was not started with NOTIFY_SOCKET. Called from the io thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace jobd::systemd {

// What STATUS= carries of a status text: one line (newlines become
// spaces), at most 1,024 bytes.
std::string statusText(const std::string& status);

void notifyReady(const std::string& status);
// RELOADING=1 with MONOTONIC_USEC=, as Type=notify-reload expects.
void notifyReloading();
void notifyStopping();
void notifyStatus(const std::string& status);
void notifyWatchdog();
// Asks the service manager for this much more time to start or stop.
void notifyExtendTimeout(std::chrono::microseconds more);

// WATCHDOG_USEC, when the service manager expects pings from this process.
std::optional<std::chrono::microseconds> watchdogInterval();

}  // namespace jobd::systemd
