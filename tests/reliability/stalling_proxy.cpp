#include "stalling_proxy.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <string_view>

namespace jobd::reliability {

StallingProxy::StallingProxy(const std::string& host, const std::string& port)
    : host_(host), upstream_port_(port) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(listener_, 64) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
      ::pipe2(wake_, O_CLOEXEC) != 0) {
    throw std::runtime_error("StallingProxy: cannot listen");
  }
  port_ = ntohs(address.sin_port);
  thread_ = std::thread([this] { run(); });
}

StallingProxy::~StallingProxy() {
  stop_ = true;
  char byte = 0;
  (void)!::write(wake_[1], &byte, 1);
  thread_.join();
  for (const Link& link : links_) {
    ::close(link.client);
    ::close(link.server);
  }
  ::close(listener_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

int StallingProxy::stallExisting() {
  int count = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Link& link : links_) {
      count += link.stalled ? 0 : 1;
      link.stalled = true;
    }
  }
  char byte = 0;
  (void)!::write(wake_[1], &byte, 1);
  return count;
}

void StallingProxy::stallBefore(std::string trigger, std::string after) {
  std::lock_guard<std::mutex> lock(mutex_);
  trigger_ = std::move(trigger);
  after_ = std::move(after);
  for (Link& link : links_) {
    link.primed = false;
  }
}

int StallingProxy::connectUpstream() const {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host_.c_str(), upstream_port_.c_str(), &hints, &found) != 0) {
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  return fd;
}

// Copies what `from` holds to `to`; an end of stream or an error closes
// the link (both ends), as a working proxy would.
void StallingProxy::forward(Link& link, int from, int to) {
  char buffer[65536];
  ssize_t n = ::read(from, buffer, sizeof buffer);
  bool ok = n > 0;
  if (ok && from == link.client && !trigger_.empty()) {
    // A protocol message this small arrives in one read on loopback.
    std::string_view sent(buffer, static_cast<std::size_t>(n));
    if ((link.primed || after_.empty()) && sent.find(trigger_) != std::string_view::npos) {
      link.stalled = true;  // what it sent is never forwarded
      trigger_.clear();
      ++triggered_;
      return;
    }
    link.primed = link.primed || sent.find(after_) != std::string_view::npos;
  }
  for (ssize_t done = 0; ok && done < n;) {
    ssize_t w = ::write(to, buffer + done, static_cast<size_t>(n - done));
    ok = w > 0;
    done += ok ? w : 0;
  }
  if (!ok) {
    ::close(link.client);
    ::close(link.server);
    link.client = link.server = -1;
  }
}

void StallingProxy::run() {
  while (!stop_) {
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listener_, POLLIN, 0}};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const Link& link : links_) {
        if (!link.stalled) {
          fds.push_back({link.client, POLLIN, 0});
          fds.push_back({link.server, POLLIN, 0});
        }
      }
    }
    if (::poll(fds.data(), fds.size(), 1000) <= 0) {
      continue;
    }
    if (fds[0].revents != 0) {
      char bytes[64];
      (void)!::read(wake_[0], bytes, sizeof bytes);
      continue;  // the set of links to watch changed
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (fds[1].revents != 0) {
      int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      int server = client >= 0 ? connectUpstream() : -1;
      if (server >= 0) {
        links_.push_back({client, server});
        ++accepted_;
      } else if (client >= 0) {
        ::close(client);
      }
    }
    for (std::size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) {
        continue;
      }
      for (Link& link : links_) {
        if (link.stalled) {
          continue;  // stalled since the poll began
        }
        if (link.client == fds[i].fd) {
          forward(link, link.client, link.server);
        } else if (link.server == fds[i].fd) {
          forward(link, link.server, link.client);
        }
      }
    }
    std::erase_if(links_, [](const Link& link) { return link.client < 0; });
  }
}

}  // namespace jobd::reliability
