#include "cluster.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "process.hpp"

namespace jobd::testing {
namespace {

// The port of the cluster the tests use: PGPORT (pg_virtualenv sets it).
std::string testPort() {
  const char* port = std::getenv("PGPORT");
  return port != nullptr && *port != '\0' ? port : "5432";
}

// While the cluster is stopped, its port is held by a listening socket of
// the test's own, so that no cluster started meanwhile (another
// pg_virtualenv's, which cannot see this one's configuration) takes the
// port and keeps this one from starting again: a postmaster cannot bind a
// port that has a listener. SO_REUSEADDR, as a postmaster's, so that the
// stopped server's TIME_WAIT connections do not stop the hold. A thread
// accepts and closes at once, so a client fails as fast as against a
// stopped server.
struct PortHold {
  std::vector<int> fds;
  std::thread acceptor;
};
PortHold* hold = nullptr;

int listenOn(int family, const sockaddr* address, socklen_t size) {
  int fd = ::socket(family, SOCK_STREAM, 0);
  if (fd < 0) {
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd, address, size) != 0 || ::listen(fd, 64) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void holdPort() {
  if (hold != nullptr) {
    return;
  }
  const auto port = htons(static_cast<std::uint16_t>(std::stoi(testPort())));
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = port;
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = port;
  v6.sin6_addr = in6addr_loopback;
  auto* held = new PortHold;
  for (int fd : {listenOn(AF_INET, reinterpret_cast<const sockaddr*>(&v4), sizeof v4),
                 listenOn(AF_INET6, reinterpret_cast<const sockaddr*>(&v6), sizeof v6)}) {
    if (fd >= 0) {
      held->fds.push_back(fd);
    }
  }
  if (held->fds.empty()) {
    delete held;
    ADD_FAILURE() << "could not hold port " << testPort() << " while the cluster is down";
    return;
  }
  held->acceptor = std::thread([fds = held->fds] {
    std::vector<pollfd> polled;
    for (int fd : fds) {
      polled.push_back({fd, POLLIN, 0});
    }
    while (::poll(polled.data(), polled.size(), -1) > 0) {
      for (const pollfd& p : polled) {
        if ((p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
          return;  // shut down by releasePort()
        }
        if ((p.revents & POLLIN) != 0) {
          int client = ::accept(p.fd, nullptr, nullptr);
          if (client < 0) {
            return;
          }
          ::close(client);
        }
      }
    }
  });
  hold = held;
}

void releasePort() {
  if (hold == nullptr) {
    return;
  }
  for (int fd : hold->fds) {
    ::shutdown(fd, SHUT_RDWR);  // wakes the acceptor's poll
  }
  hold->acceptor.join();
  for (int fd : hold->fds) {
    ::close(fd);
  }
  delete hold;
  hold = nullptr;
}

}  // namespace

std::vector<std::string> cluster() {
  ProcessResult list = runProcess({"pg_lsclusters", "-h"});
  std::istringstream lines(list.out);
  std::string line;
  std::vector<std::string> first;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string version, name, port;
    words >> version >> name >> port;
    if (version.empty() || name.empty()) {
      continue;
    }
    if (port == testPort()) {
      return {version, name};
    }
    if (first.empty()) {
      first = {version, name};
    }
  }
  if (first.empty()) {
    throw std::runtime_error("no PostgreSQL cluster found: " + list.out + list.err);
  }
  return first;
}

void clusterCtl(const std::string& action, const std::string& mode) {
  std::vector<std::string> c = cluster();
  std::vector<std::string> argv = {"pg_ctlcluster", c[0], c[1], action};
  if (action != "start") {
    argv.insert(argv.end(), {"-m", mode});
  }
  if (action == "start") {
    releasePort();
  }
  ProcessResult result = runProcess(argv, {{}, {}, std::chrono::seconds(120)});
  if (result.exit_code != 0) {
    ADD_FAILURE() << "pg_ctlcluster " << action << " -m " << mode << ": " << result.out
                  << result.err;
  } else if (action == "stop") {
    holdPort();
  }
}

ClusterGuard::~ClusterGuard() {
  releasePort();
  std::vector<std::string> c = cluster();
  runProcess({"pg_ctlcluster", c[0], c[1], "start"});
}

}  // namespace jobd::testing
