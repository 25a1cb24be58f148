#include "systemd/notify.hpp"

#include <systemd/sd-daemon.h>

namespace jobd::systemd {

void notifyReady(const std::string& status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}

void notifyStopping() {
  sd_notify(0, "STOPPING=1");
}

void notifyStatus(const std::string& status) {
  sd_notifyf(0, "STATUS=%s", status.c_str());
}

}  // namespace jobd::systemd
