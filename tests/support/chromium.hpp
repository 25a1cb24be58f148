// Headless Chromium (Debian's `chromium`) for the dashboard's tests: a
// page's DOM after its scripts ran, or a screenshot of it.
#pragma once

#include <string>

#include "process.hpp"

namespace jobd::testing {

struct Chromium {
  std::string profile;  // a user data directory of this test process's own

  Chromium();
  ~Chromium();  // removes the profile
  Chromium(const Chromium&) = delete;
  Chromium& operator=(const Chromium&) = delete;
  // Loads url, runs its scripts for `budget_ms` of virtual time, and
  // returns the DOM; or takes a screenshot when `screenshot` is set. A URL
  // may carry a user and password (http://user:pw@host/...) for a
  // dashboard that asks for them.
  ProcessResult run(const std::string& url, int budget_ms, const std::string& screenshot = "",
                    const std::string& window = "1400,1100") const;
  // Takes a screenshot of url into the build directory's test-artifacts/
  // as `name`; a test failure unless it is a real image (over 10 kB).
  void screenshot(const std::string& url, const std::string& name,
                  const std::string& window = "1400,1100") const;
};

}  // namespace jobd::testing
