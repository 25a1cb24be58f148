// Notifier: the one session that LISTENs on channel `jobd` (SPEC §4.2). Its
// socket is waited on by the io thread with Asio; when it is readable the
// io thread reads the pending notifications (no query, no waiting) and calls
// on_notify(job_type) for each. Opening the session and sending LISTEN block,
// so they run on the database thread. After a lost session it reconnects
// with backoff and calls on_connected() again, and the daemon polls, since
// notifications sent in the gap are gone.
//
// A session that stops answering without closing (a half-open connection:
// a stalled middlebox, a partitioned network) would deliver nothing, and
// TCP may not tell for a long time. So the session also listens on a
// channel of its own, and about every `probe_every` the database thread
// sends a NOTIFY there; a probe that has not arrived `probe_every` after it
// was committed means the session is gone: it is dropped and opened again.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include "runtime/asio.hpp"

#include "runtime/database_thread.hpp"

namespace jobd::runtime {

// Payloads on channel jobd that are not job types (a job type of the same
// name is woken as well). A schedule was added, changed or removed
// (schema 15's trigger):
inline constexpr const char* kScheduleChanged = "jobd.schedule";
// Leases were taken away (schema 17's pause with cancel_running): every
// daemon renews at once, and stops the jobs it lost.
inline constexpr const char* kLeasesChanged = "jobd.leases";

class Notifier {
 public:
  using NotifyHandler = std::function<void(const std::string& job_type)>;

  // probe_every: [jobd] database_timeout; zero sends no probe.
  Notifier(boost::asio::io_context& io, DatabaseThread& db, std::string conninfo,
           NotifyHandler on_notify, std::function<void()> on_connected,
           std::chrono::milliseconds probe_every = std::chrono::milliseconds(0));
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
  // why: the warning's reason; nullopt for a quiet replacement.
  void drop(const std::optional<std::string>& why);
  void scheduleReconnect(int failures);
  void scheduleProbe();
  void sendProbe();

  boost::asio::io_context& io_;
  DatabaseThread& db_;
  std::string conninfo_;
  NotifyHandler on_notify_;
  std::function<void()> on_connected_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> socket_;
  boost::asio::steady_timer reconnect_timer_;
  std::chrono::milliseconds probe_every_;
  std::string probe_channel_;
  boost::asio::steady_timer probe_timer_;
  // Probes are numbered: the last one sent, the last one heard, and when
  // the last one sent was committed (nothing while it is on its way).
  std::uint64_t probe_sent_ = 0;
  std::uint64_t probe_heard_ = 0;
  std::optional<std::chrono::steady_clock::time_point> probe_committed_;
  // When the session last answered: opened, or a probe heard.
  std::chrono::steady_clock::time_point last_answer_{};
  int failures_ = 0;
  bool replacing_ = false;  // a quiet replacement is under way
  bool stopped_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace jobd::runtime
