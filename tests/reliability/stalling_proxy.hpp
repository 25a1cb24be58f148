// StallingProxy: a TCP proxy between the daemons and PostgreSQL that can
// stop forwarding on the connections it carries without closing them: the
// half-open connection of a stalled middlebox or a partitioned network,
// where each kernel still acknowledges and no answer ever comes. New
// connections are forwarded as before. Owns one thread.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace jobd::reliability {

class StallingProxy {
 public:
  // Listens on 127.0.0.1, on a free port, and forwards to host:port.
  StallingProxy(const std::string& host, const std::string& port);
  ~StallingProxy();
  StallingProxy(const StallingProxy&) = delete;
  StallingProxy& operator=(const StallingProxy&) = delete;

  int port() const { return port_; }
  // Every connection open now stops forwarding, both ways, and stays open;
  // returns how many.
  int stallExisting();
  // Connections accepted so far.
  int accepted() const { return accepted_.load(); }
  // The next connection whose client sends `trigger` after it has sent
  // `after` stalls before the trigger reaches the server: a COMMIT lost in
  // a middlebox, say. Once per call. An empty `after` arms every
  // connection from its first message on (a cancel request is its
  // connection's only message).
  void stallBefore(std::string trigger, std::string after);
  // Connections stalled by stallBefore() so far.
  int triggered() const { return triggered_.load(); }

 private:
  struct Link {
    int client;
    int server;
    bool stalled = false;
    bool primed = false;  // has sent the armed `after`
  };
  void run();
  void forward(Link& link, int from, int to);
  int connectUpstream() const;

  std::string host_;
  std::string upstream_port_;
  int listener_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::mutex mutex_;
  std::vector<Link> links_;  // under mutex_
  std::string trigger_;      // under mutex_; empty: not armed
  std::string after_;        // under mutex_
  std::atomic<int> triggered_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

}  // namespace jobd::reliability
