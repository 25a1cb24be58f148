#include "notify_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <stdexcept>

#include <gtest/gtest.h>

namespace jobd::testing {

NotifySocket::NotifySocket() {
  static std::atomic<int> counter{0};
  path_ = ::testing::TempDir() + "jobd_notify_" + std::to_string(getpid()) + "_" +
          std::to_string(counter++);
  unlink(path_.c_str());
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (fd_ < 0 || path_.size() >= sizeof address.sun_path) {
    throw std::runtime_error("NotifySocket: cannot make a socket at " + path_);
  }
  std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    throw std::runtime_error("NotifySocket: bind " + path_ + ": " + std::strerror(errno));
  }
  reader_ = std::thread([this] {
    char buffer[4096];
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      int ready = poll(&p, 1, 50);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) {
          return;
        }
      }
      if (ready <= 0) {
        continue;
      }
      ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) {
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      messages_.push_back(
          {std::chrono::steady_clock::now(), std::string(buffer, static_cast<std::size_t>(n))});
      arrived_.notify_all();
    }
  });
}

NotifySocket::~NotifySocket() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  reader_.join();
  close(fd_);
  unlink(path_.c_str());
}

int NotifySocket::waitFor(const std::string& needle, std::size_t from,
                          std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  int found = -1;
  arrived_.wait_for(lock, timeout, [&] {
    for (std::size_t i = from; i < messages_.size(); ++i) {
      if (messages_[i].text.find(needle) != std::string::npos) {
        found = static_cast<int>(i);
        return true;
      }
    }
    return false;
  });
  return found;
}

std::vector<NotifyMessage> NotifySocket::messages() {
  std::lock_guard<std::mutex> lock(mutex_);
  return messages_;
}

}  // namespace jobd::testing
