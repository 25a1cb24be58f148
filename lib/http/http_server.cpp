#include "http/http_server.hpp"
#include "core/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <stdexcept>

namespace jobd::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using boost::asio::ip::tcp;

namespace {

// A request is a GET line and a few headers: anything larger is not ours.
constexpr std::size_t kMaxRequestBytes = std::size_t{16} * 1024;
// Connections open at once; more are closed at accept.
constexpr std::size_t kMaxSessions = 64;
// An idle keep-alive connection, or a client that sends or reads too
// slowly, is closed after this.
constexpr std::chrono::seconds kIdleTimeout{30};

}  // namespace

class HttpServer::Session : public std::enable_shared_from_this<HttpServer::Session> {
 public:
  Session(tcp::socket socket, Handler handler)
      : stream_(std::move(socket)), handler_(std::move(handler)) {}

  void start() { read(); }
  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(kMaxRequestBytes);
    parser_->body_limit(kMaxRequestBytes);
    stream_.expires_after(kIdleTimeout);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (ec) {
      if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
          ec != boost::asio::error::operation_aborted) {
        write(bad(400, "bad request: " + ec.message() + "\n"), false);
      } else {
        close();
      }
      return;
    }
    const auto& message = parser_->get();
    bool keep_alive = message.keep_alive();
    if (message.method() != bhttp::verb::get && message.method() != bhttp::verb::head) {
      write(bad(405, "only GET and HEAD\n"), keep_alive);
      return;
    }
    Request request;
    request.method = std::string(message.method_string());
    std::string_view target(message.target().data(), message.target().size());
    std::size_t question = target.find('?');
    request.path = std::string(target.substr(0, question));
    if (question != std::string_view::npos) {
      request.query = std::string(target.substr(question + 1));
    }
    bool head = message.method() == bhttp::verb::head;
    handler_(request, [self = shared_from_this(), keep_alive, head](Response response) {
      if (head) {
        response.body.clear();
      }
      self->write(std::move(response), keep_alive);
    });
  }

  static Response bad(int status, std::string text) {
    Response r;
    r.status = status;
    r.body = std::move(text);
    return r;
  }

  void write(Response response, bool keep_alive) {
    auto message = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(response.status), 11);
    message->set(bhttp::field::server, "jobd");
    message->set(bhttp::field::content_type, response.content_type);
    message->set(bhttp::field::cache_control, "no-store");
    for (const auto& [name, value] : response.headers) {
      message->set(name, value);
    }
    message->body() = std::move(response.body);
    message->keep_alive(keep_alive);
    message->prepare_payload();
    stream_.expires_after(kIdleTimeout);
    bhttp::async_write(
        stream_, *message,
        [self = shared_from_this(), message, keep_alive](beast::error_code ec, std::size_t) {
          if (ec || !keep_alive) {
            self->close();
          } else {
            self->read();
          }
        });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Handler handler_;
};

HttpServer::HttpServer(boost::asio::io_context& io, Handler handler)
    : io_(io), handler_(std::move(handler)), acceptor_(io) {}

HttpServer::~HttpServer() {
  stop();
}

std::string HttpServer::start(const std::string& listen) {
  std::size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  std::string port = listen.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  try {
    tcp::resolver resolver(io_);
    tcp::endpoint endpoint = *resolver.resolve(host, port).begin();
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
  } catch (const boost::system::system_error& e) {
    acceptor_.close();
    throw std::runtime_error("metrics_listen " + listen + ": " + e.code().message());
  }
  tcp::endpoint bound = acceptor_.local_endpoint();
  accept();
  std::string address = bound.address().to_string();
  if (bound.address().is_v6()) {
    address = "[" + address + "]";
  }
  return address + ":" + std::to_string(bound.port());
}

void HttpServer::stop() {
  if (acceptor_.is_open()) {
    beast::error_code ignored;
    acceptor_.close(ignored);
  }
  for (auto& weak : open_) {
    if (auto session = weak.lock()) {
      session->close();
    }
  }
  open_.clear();
}

void HttpServer::accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) {
      return;
    }
    if (!ec) {
      open_.erase(std::remove_if(open_.begin(), open_.end(),
                                 [](const std::weak_ptr<Session>& s) { return s.expired(); }),
                  open_.end());
      if (open_.size() >= kMaxSessions) {
        logs::warn("HTTP_BUSY {} connections open; closing a new one", open_.size());
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        auto session = std::make_shared<Session>(std::move(socket), handler_);
        open_.push_back(session);
        session->start();
      }
    }
    accept();
  });
}

}  // namespace jobd::http
