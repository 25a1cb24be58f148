// HttpServer: the HTTP/1.1 listener on `metrics_listen` (SPEC §9), on the
// daemon's io thread with Boost.Beast. It reads GET requests and hands each
// to the handler, which answers through `respond`, at once (metrics,
// health) or later from another thread's result posted back to the io
// thread (dashboard pages). It never runs SQL itself. Slow or idle clients
// time out; requests are small and their number is capped, so a scraper
// or a browser cannot starve the loop.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "runtime/asio.hpp"

namespace jobd::http {

struct Request {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', or empty
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

  HttpServer(boost::asio::io_context& io, Handler handler);
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

  boost::asio::io_context& io_;
  Handler handler_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::weak_ptr<Session>> open_;  // for stop(); pruned at accept
};

}  // namespace jobd::http
