// sd_notify messages to systemd (SPEC §8). Each call does nothing when the
// service was not started with NOTIFY_SOCKET. Called from the io thread.
#pragma once

#include <string>

namespace jobd::systemd {

void notifyReady(const std::string& status);
void notifyStopping();
void notifyStatus(const std::string& status);

}  // namespace jobd::systemd
