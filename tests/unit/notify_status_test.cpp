// systemd::notifyStatus (systemd/notify.hpp) against a notification socket
// of the test's own: STATUS= is always one line.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "notify_socket.hpp"
#include "systemd/notify.hpp"

namespace jobd::systemd {
namespace {

// A multi-line error (a database's message quoted in "waiting for the
// database: ...") stays one assignment: no line of it can become another
// (issue 18, item 16).
TEST(NotifyStatusTest, StatusIsOneLine) {
  testing::NotifySocket socket;
  ::setenv("NOTIFY_SOCKET", socket.env().at("NOTIFY_SOCKET").c_str(), 1);
  notifyStatus("waiting for the database: could not connect\nREADY=1\r\nis the server running?");
  int index = socket.waitFor("STATUS=");
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_GE(index, 0);
  EXPECT_EQ(socket.messages().at(static_cast<std::size_t>(index)).text,
            "STATUS=waiting for the database: could not connect READY=1  is the server running?");
  EXPECT_EQ(statusText(std::string(5000, 'x')).size(), 1024U);
}

}  // namespace
}  // namespace jobd::systemd
