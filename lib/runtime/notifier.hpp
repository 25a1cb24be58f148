// Notifier: the one session that LISTENs on channel `jobd` (SPEC §4.2). Its
// socket is waited on by the io thread with Asio; when it is readable the
// io thread reads the pending notifications (no query, no waiting) and calls
// on_notify(job_type) for each. Opening the session and sending LISTEN block,
// so they run on the database thread. After a lost session it reconnects
// with backoff and calls on_connected() again, and the daemon polls, since
// notifications sent in the gap are gone.
#pragma once

#include <functional>
#include <memory>
#include <random>
#include <string>
#include "runtime/asio.hpp"

#include "runtime/database_thread.hpp"

namespace jobd::runtime {

class Notifier {
 public:
  using NotifyHandler = std::function<void(const std::string& job_type)>;

  Notifier(boost::asio::io_context& io, DatabaseThread& db, std::string conninfo,
           NotifyHandler on_notify, std::function<void()> on_connected);
  ~Notifier();

  void start();
  // Closes the session. Idempotent; safe before start(). io thread.
  void stop();
  bool listening() const { return session_ != nullptr; }

 private:
  struct Session;

  void connect();
  void adopt(std::unique_ptr<Session> session);
  void waitReadable();
  void drop(const std::string& why);
  void scheduleReconnect(int failures);

  boost::asio::io_context& io_;
  DatabaseThread& db_;
  std::string conninfo_;
  NotifyHandler on_notify_;
  std::function<void()> on_connected_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> socket_;
  boost::asio::steady_timer reconnect_timer_;
  int failures_ = 0;
  bool stopped_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace jobd::runtime
