#include "runtime/notifier.hpp"

#include <spdlog/spdlog.h>

#include "core/errors.hpp"

#include <pqxx/notification>

#include "store/database.hpp"

namespace jobd::runtime {

struct Notifier::Session {
  class Receiver : public pqxx::notification_receiver {
   public:
    Receiver(pqxx::connection_base& conn, NotifyHandler& handler)
        : pqxx::notification_receiver(conn, "jobd"), handler_(handler) {}
    void operator()(const std::string& payload, int) override { handler_(payload); }

   private:
    NotifyHandler& handler_;
  };

  std::unique_ptr<pqxx::connection> connection;
  std::unique_ptr<Receiver> receiver;

  ~Session() {
    receiver.reset();  // before the connection it refers to
  }
};

Notifier::Notifier(boost::asio::io_context& io, DatabaseThread& db, std::string conninfo,
                   NotifyHandler on_notify, std::function<void()> on_connected)
    : io_(io),
      db_(db),
      conninfo_(std::move(conninfo)),
      on_notify_(std::move(on_notify)),
      on_connected_(std::move(on_connected)),
      reconnect_timer_(io) {}

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
      session->connection = store::connect(conninfo_, "jobd listen");
      // LISTEN is sent by the receiver's constructor, under the database
      // thread's deadline.
      db_.watchInstead(session->connection.get());
      session->receiver = std::make_unique<Session::Receiver>(*session->connection, on_notify_);
      db_.watchInstead(nullptr);
    } catch (const std::exception& e) {
      db_.watchInstead(nullptr);
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
        spdlog::warn("LISTENER_DOWN cannot LISTEN: {}", error);
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
    spdlog::info("LISTENER_UP listening again after {} failed attempts", failures_);
  }
  failures_ = 0;
  spdlog::debug("LISTENER_UP listening on channel jobd");
  waitReadable();
  on_connected_();
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

void Notifier::drop(const std::string& why) {
  spdlog::warn("LISTENER_DOWN lost the LISTEN session: {}", why);
  if (socket_) {
    socket_->release();
    socket_.reset();
  }
  session_.reset();
  failures_ = 1;
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
