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

// A request is a GET line and a few headers, or a short form (an action):
// anything larger is not ours.
constexpr std::size_t kMaxRequestBytes = std::size_t{16} * 1024;
// A client that reads an answer too slowly is closed after this.
constexpr std::chrono::seconds kWriteTimeout{30};

}  // namespace

class HttpServer::Session : public std::enable_shared_from_this<HttpServer::Session> {
 public:
  Session(tcp::socket socket, Handler handler)
      : stream_(std::move(socket)), handler_(std::move(handler)) {
    beast::error_code ec;
    tcp::endpoint remote = stream_.socket().remote_endpoint(ec);
    peer_ = remote.address();
  }

  void start() { read(); }
  const boost::asio::ip::address& peer() const { return peer_; }
  // Waiting for a request (idle, or sending one too slowly): what a new
  // connection over a cap may take the place of.
  bool waiting() const { return waiting_; }
  std::chrono::steady_clock::time_point since() const { return since_; }
  bool closed() const { return closed_; }
  void close() {
    closed_ = true;
    waiting_ = false;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(kMaxRequestBytes);
    parser_->body_limit(kMaxRequestBytes);
    // The whole request, headers and all, within the deadline: a client
    // that trickles bytes does not hold its connection for longer.
    stream_.expires_after(HttpServer::kRequestDeadline);
    waiting_ = true;
    since_ = std::chrono::steady_clock::now();
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    waiting_ = false;
    if (closed_) {
      return;  // made room for a newer connection
    }
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
    if (message.method() != bhttp::verb::get && message.method() != bhttp::verb::head &&
        message.method() != bhttp::verb::post) {
      write(bad(405, "only GET, HEAD and POST\n"), keep_alive);
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
    request.host = std::string(message[bhttp::field::host]);
    request.authorization = std::string(message[bhttp::field::authorization]);
    request.peer = peer_.to_string();
    request.body = message.body();
    request.content_type = std::string(message[bhttp::field::content_type]);
    request.origin = std::string(message[bhttp::field::origin]);
    request.fetch_site = std::string(message["Sec-Fetch-Site"]);
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
    // No page of another site may frame these (an action's button under a
    // decoy), or read a body as another type.
    message->set("X-Frame-Options", "DENY");
    message->set("Content-Security-Policy", "frame-ancestors 'none'");
    message->set("X-Content-Type-Options", "nosniff");
    for (const auto& [name, value] : response.headers) {
      message->set(name, value);
    }
    message->body() = std::move(response.body);
    message->keep_alive(keep_alive);
    message->prepare_payload();
    stream_.expires_after(kWriteTimeout);
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
  boost::asio::ip::address peer_;
  bool waiting_ = false;
  bool closed_ = false;
  std::chrono::steady_clock::time_point since_ = std::chrono::steady_clock::now();
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Handler handler_;
};

HttpServer::HttpServer(boost::asio::io_context& io, std::string name, Handler handler)
    : io_(io), name_(std::move(name)), handler_(std::move(handler)), acceptor_(io) {}

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
    throw std::runtime_error(name_ + " " + listen + ": " + e.code().message());
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

bool HttpServer::admit(const boost::asio::ip::address& peer) {
  std::vector<std::shared_ptr<Session>> sessions;
  for (auto& weak : open_) {
    if (auto session = weak.lock(); session && !session->closed()) {
      sessions.push_back(std::move(session));
    }
  }
  std::size_t from_peer = std::count_if(sessions.begin(), sessions.end(),
                                        [&](const auto& s) { return s->peer() == peer; });
  // Over a cap, the oldest waiting connection (of this peer, when the
  // peer's own cap is the one reached) makes room.
  bool peer_full = from_peer >= kMaxPerClient;
  if (!peer_full && sessions.size() < kMaxSessions) {
    return true;
  }
  std::shared_ptr<Session> oldest;
  for (const auto& s : sessions) {
    if (s->waiting() && (!peer_full || s->peer() == peer) &&
        (!oldest || s->since() < oldest->since())) {
      oldest = s;
    }
  }
  if (!oldest) {
    return false;
  }
  oldest->close();
  return true;
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
      beast::error_code peer_error;
      boost::asio::ip::address peer = socket.remote_endpoint(peer_error).address();
      if (!admit(peer)) {
        logs::warn("HTTP_BUSY {} {} connections open, all answering; closing a new one", name_,
                   open_.size());
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
