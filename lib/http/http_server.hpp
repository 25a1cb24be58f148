// HttpServer: an HTTP/1.1 listener (`metrics_listen`, `dashboard_listen`,
// SPEC §9) on the daemon's io thread with Boost.Beast. It reads GET, HEAD
// and POST requests (16 KiB at most) and hands each to the handler, which answers through
// `respond`, at once (metrics, health) or later from another thread's result posted back to the io
// thread (dashboard pages). It never runs SQL itself.
//
// No client can starve the others (a Prometheus scrape, a /healthz probe):
// a request must arrive whole within kRequestDeadline of the connection
// (or of the previous answer); connections are capped (kMaxSessions, and
// kMaxPerClient from one address), and a new one over a cap takes the
// place of the oldest connection that has not sent a whole request, so a
// client that opens connections and sends nothing only ever evicts itself
// or other idlers.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "runtime/asio.hpp"

namespace jobd::http {

struct Request {
  std::string method;
  std::string path;           // without the query
  std::string query;          // after '?', or empty
  std::string host;           // the Host header, as sent
  std::string authorization;  // the Authorization header, as sent
  std::string peer;           // the client's address
  // For a POST (the dashboard's actions): its body, and the headers that
  // say where it came from.
  std::string body;
  std::string content_type;
  std::string origin;      // the Origin header, as sent
  std::string fetch_site;  // Sec-Fetch-Site, as sent
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones
};

class HttpServer {
 public:
  // Call `respond` exactly once, on the io thread.
  using Handler = std::function<void(const Request&, const std::function<void(Response)>& respond)>;

  static constexpr std::size_t kMaxSessions = 64;
  static constexpr std::size_t kMaxPerClient = 16;
  static constexpr std::chrono::seconds kRequestDeadline{10};

  // `name` is the configuration key, for errors and logs.
  HttpServer(boost::asio::io_context& io, std::string name, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds `host:port` (port 0: any free port) and starts accepting;
  // returns the bound address as host:port. Throws std::runtime_error
  // naming the address when it cannot bind.
  std::string start(const std::string& listen);
  // Closes the listener and every connection. Idempotent; safe before start().
  void stop();

 private:
  class Session;
  void accept();
  // Makes room for a connection from `peer`: false when every connection
  // over the cap is busy answering.
  bool admit(const boost::asio::ip::address& peer);

  boost::asio::io_context& io_;
  std::string name_;
  Handler handler_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::weak_ptr<Session>> open_;  // for stop(); pruned at accept
};

}  // namespace jobd::http
