#include "runtime/notifier.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>

#include "core/errors.hpp"
#include "core/text.hpp"

#include <pqxx/notification>

#include "core/log.hpp"
#include "store/database.hpp"

namespace jobd::runtime {

struct Notifier::Session {
  class Receiver : public pqxx::notification_receiver {
   public:
    Receiver(pqxx::connection_base& conn, const std::string& channel, NotifyHandler handler)
        : pqxx::notification_receiver(conn, channel), handler_(std::move(handler)) {}
    void operator()(const std::string& payload, int) override { handler_(payload); }

   private:
    NotifyHandler handler_;
  };

  std::unique_ptr<pqxx::connection> connection;
  std::unique_ptr<Receiver> receiver;
  std::unique_ptr<Receiver> probes;

  ~Session() {
    // A receiver's destructor sends UNLISTEN and waits for the answer, which
    // a session that stopped answering never gives: the io thread would wait
    // for ever. Closing the session ends its LISTENs anyway, so the socket
    // is shut first and each UNLISTEN fails at once.
    if (connection && connection->sock() >= 0) {
      ::shutdown(connection->sock(), SHUT_RDWR);
    }
    // Before the connection they refer to.
    probes.reset();
    receiver.reset();
  }
};

Notifier::Notifier(boost::asio::io_context& io, DatabaseThread& db, std::string conninfo,
                   NotifyHandler on_notify, std::function<void()> on_connected,
                   std::chrono::milliseconds probe_every)
    : io_(io),
      db_(db),
      conninfo_(std::move(conninfo)),
      on_notify_(std::move(on_notify)),
      on_connected_(std::move(on_connected)),
      reconnect_timer_(io),
      probe_every_(probe_every),
      probe_timer_(io) {
  probe_channel_ = "jobd_probe_" + hex16(rng_());  // a channel no other daemon listens on
}

Notifier::~Notifier() {
  stop();
}

void Notifier::start() {
  stopped_ = false;
  connect();
}

void Notifier::stop() {
  stopped_ = true;
  reconnect_timer_.cancel();
  probe_timer_.cancel();
  if (socket_) {
    socket_->cancel();
    socket_->release();  // the descriptor belongs to libpq
    socket_.reset();
  }
  session_.reset();
}

void Notifier::connect() {
  db_.post([this] {
    auto session = std::make_unique<Session>();
    std::string error;
    try {
      session->connection = store::open(conninfo_, db_.connectWithin());
      // The session's settings, and LISTEN (sent by the receivers'
      // constructors), under the database thread's deadline.
      DatabaseThread::Watching watching(db_, session->connection.get());
      store::configure(*session->connection, "jobd listen");
      session->receiver =
          std::make_unique<Session::Receiver>(*session->connection, "jobd", on_notify_);
      // Called on the io thread, by get_notifs().
      session->probes = std::make_unique<Session::Receiver>(
          *session->connection, probe_channel_, [this](const std::string& payload) {
            std::uint64_t number = 0;
            std::from_chars(payload.data(), payload.data() + payload.size(), number);
            probe_heard_ = std::max(probe_heard_, number);
            last_answer_ = std::chrono::steady_clock::now();
          });
    } catch (const std::exception& e) {
      error = errorLine(e.what());
      session.reset();
    }
    boost::asio::post(io_, [this, session = std::move(session), error]() mutable {
      if (stopped_) {
        return;
      }
      if (session) {
        adopt(std::move(session));
        return;
      }
      if (failures_ == 0) {
        logs::warn("LISTENER_DOWN cannot LISTEN: {}", error);
      }
      scheduleReconnect(failures_++);
    });
  });
}

void Notifier::adopt(std::unique_ptr<Session> session) {
  session_ = std::move(session);
  // Never cache the descriptor across reconnects: each session has its own.
  socket_ =
      std::make_unique<boost::asio::posix::stream_descriptor>(io_, session_->connection->sock());
  if (failures_ > 0) {
    logs::info("LISTENER_UP listening again after {} failed attempts", failures_);
  } else if (replacing_) {
    logs::info("LISTENER_UP listening again on a new session");
  }
  failures_ = 0;
  replacing_ = false;
  last_answer_ = std::chrono::steady_clock::now();
  logs::debug("LISTENER_UP listening on channel jobd");
  // What an earlier session had on its way is not this one's to hear.
  probe_heard_ = probe_sent_;
  probe_committed_.reset();
  waitReadable();
  scheduleProbe();
  on_connected_();
}

void Notifier::scheduleProbe() {
  if (probe_every_.count() <= 0) {
    return;
  }
  // Checked twice per probe_every: a lost session is dropped within about
  // two of them.
  probe_timer_.expires_after(probe_every_ / 2);
  probe_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_ || !session_) {
      return;
    }
    if (!answeredSinceSilence(last_answer_)) {
      // Not a failure of its own: replaced quietly (listen_database may
      // take another path than the connection that went silent).
      logs::info(
          "LISTENER_REOPEN the LISTEN session has heard nothing since another connection of this "
          "daemon went silent (a stalled network path catches idle connections too); replacing "
          "it");
      drop(std::nullopt);
      return;
    }
    if (probe_heard_ < probe_sent_ && probe_committed_ &&
        std::chrono::steady_clock::now() - *probe_committed_ >= probe_every_) {
      noteSilentConnection(*probe_committed_);
      drop("no notification came back within " + std::to_string(probe_every_.count()) +
           " ms (database_timeout)");
      return;
    }
    if (probe_heard_ >= probe_sent_) {
      sendProbe();
    }
    scheduleProbe();
  });
}

// NOTIFY on the probe channel, from the database thread's connection. A
// probe that could not be sent (the database thread has no connection)
// counts as heard: it says nothing of the LISTEN session.
void Notifier::sendProbe() {
  std::uint64_t number = ++probe_sent_;
  probe_committed_.reset();
  db_.post([this, number] {
    bool committed = false;
    if (db_.repository() != nullptr) {
      try {
        pqxx::nontransaction txn(*db_.connection(), "listen_probe");
        txn.exec_params("SELECT pg_notify($1, $2)", probe_channel_, std::to_string(number));
        committed = true;
      } catch (const pqxx::broken_connection& e) {
        db_.connectionLost(errorLine(e.what()));
      } catch (const std::exception& e) {
        logs::debug("LISTENER_PROBE_FAILED {}", errorLine(e.what()));
      }
    }
    boost::asio::post(io_, [this, number, committed] {
      if (number != probe_sent_) {
        return;
      }
      if (committed) {
        probe_committed_ = std::chrono::steady_clock::now();
      } else {
        probe_heard_ = std::max(probe_heard_, number);
      }
    });
  });
}

void Notifier::waitReadable() {
  socket_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [this](const boost::system::error_code& ec) {
                        if (ec == boost::asio::error::operation_aborted || stopped_ || !session_) {
                          return;
                        }
                        if (ec) {
                          drop(ec.message());
                          return;
                        }
                        try {
                          // Reads what the socket holds and dispatches it;
                          // it never waits for more.
                          session_->connection->get_notifs();
                        } catch (const std::exception& e) {
                          drop(errorLine(e.what()));
                          return;
                        }
                        if (!session_->connection->is_open()) {
                          drop("the connection closed");
                          return;
                        }
                        waitReadable();
                      });
}

void Notifier::drop(const std::optional<std::string>& why) {
  if (why) {
    logs::warn("LISTENER_DOWN lost the LISTEN session: {}", *why);
  }
  if (socket_) {
    socket_->release();
    socket_.reset();
  }
  session_.reset();
  failures_ = why ? 1 : 0;
  replacing_ = !why;
  scheduleReconnect(0);
}

void Notifier::scheduleReconnect(int failures) {
  reconnect_timer_.expires_after(DatabaseThread::backoff(failures, rng_));
  reconnect_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_) {
      connect();
    }
  });
}

}  // namespace jobd::runtime
