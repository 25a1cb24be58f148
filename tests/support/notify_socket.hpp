// NotifySocket: a fake systemd notification socket for tests. Binds a Unix
// datagram socket at a fresh path (pass env() to the daemon as its
// NOTIFY_SOCKET) and records every message with the time it arrived, on a
// reader thread. Owned by one test thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace jobd::testing {

struct NotifyMessage {
  std::chrono::steady_clock::time_point at;
  std::string text;  // e.g. "READY=1\nSTATUS=..."
};

class NotifySocket {
 public:
  NotifySocket();
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  std::map<std::string, std::string> env() const { return {{"NOTIFY_SOCKET", path_}}; }
  // Waits for a message containing needle, received after message index
  // `from`; returns its index, or -1 on timeout.
  int waitFor(const std::string& needle, std::size_t from = 0,
              std::chrono::milliseconds timeout = std::chrono::seconds(30));
  std::vector<NotifyMessage> messages();

 private:
  std::string path_;
  int fd_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<NotifyMessage> messages_;
  bool stopping_ = false;
};

}  // namespace jobd::testing
