// Sleeper: the daemon's side of the quiet enqueue (migration 9,
// docs/schema.md "Wake-ups"). An enqueue sends its NOTIFY only while some
// daemon sleeps on the job's type, that is holds the type's "asleep"
// advisory lock on a session of its own; a daemon falls asleep only when no
// enqueue of the type is in flight, and else polls. The locks live on this
// class's own connection (`listen_database` when set, which is a session
// even when `database` is PgBouncer), and are gone with it: a new
// connection holds none, and the Producer hears that it must claim.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "runtime/asio.hpp"
#include "runtime/database_thread.hpp"

namespace jobd::runtime {

class Sleeper {
 public:
  // on_lost runs on the io thread when a connection that held locks is
  // gone: every type it slept on must be claimed (and slept on) again.
  Sleeper(boost::asio::io_context& io, DatabaseThread& db, std::function<void()> on_lost);

  // From the io thread, after a claim of `section` (serving job_type) came
  // back short; done(asleep, newly) runs on the io thread: asleep when the
  // section now sleeps on the type (newly: claim once more; else nothing to
  // do), not when an enqueue was in flight (poll soon). Each section holds
  // the type's lock on its own (a session lock counts its holders), so two
  // sections of one type never let go of each other's.
  void sleepOn(const std::string& section, const std::string& job_type,
               std::function<void(bool asleep, bool newly)> done);
  // From the io thread, when a claim came back full: busy, no NOTIFY needed.
  void wakeFrom(const std::string& section, const std::string& job_type);
  // From the io thread, every few seconds: finds a connection that died
  // while it held locks, and says so (on_lost).
  void check();

 private:
  // On the database thread: forgets the locks of a connection that is gone.
  bool forgetIfReconnected();

  boost::asio::io_context& io_;
  DatabaseThread& db_;
  std::function<void()> on_lost_;
  // Database thread only: the sections this connection holds "asleep" for.
  std::set<std::string> held_;
  std::uint64_t generation_ = 0;
};

}  // namespace jobd::runtime
