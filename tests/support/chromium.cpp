#include "chromium.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <vector>

namespace jobd::testing {

// A profile of this test process's own: two Chromiums on one profile (two
// tests at once under ctest -j) refuse to start (exit 21).
Chromium::Chromium()
    : profile(::testing::TempDir() + "jobd_chromium_profile_" + std::to_string(::getpid())) {}

Chromium::~Chromium() {
  std::error_code ignored;
  std::filesystem::remove_all(profile, ignored);
}

ProcessResult Chromium::run(const std::string& url, int budget_ms, const std::string& screenshot,
                            const std::string& window) const {
  std::vector<std::string> argv = {"chromium",
                                   "--headless=new",
                                   "--no-sandbox",  // the suite runs as root in CI
                                   "--disable-gpu",
                                   "--disable-dev-shm-usage",
                                   "--no-first-run",
                                   "--user-data-dir=" + profile,
                                   "--virtual-time-budget=" + std::to_string(budget_ms)};
  if (screenshot.empty()) {
    argv.push_back("--dump-dom");
  } else {
    argv.push_back("--window-size=" + window);
    argv.push_back("--hide-scrollbars");
    argv.push_back("--screenshot=" + screenshot);
  }
  argv.push_back(url);
  return runProcess(argv, {"", {}, std::chrono::seconds(90)});
}

void Chromium::screenshot(const std::string& url, const std::string& name,
                          const std::string& window) const {
  std::filesystem::path artifacts = std::filesystem::path(JOBD_BUILD_DIR) / "test-artifacts";
  std::filesystem::create_directories(artifacts);
  std::filesystem::path shot = artifacts / name;
  std::filesystem::remove(shot);
  ProcessResult r = run(url, 1000, shot.string(), window);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(std::filesystem::exists(shot) ? std::filesystem::file_size(shot) : 0, 10000u) << name;
  std::cout << "screenshot: " << shot.string() << "\n";
}

}  // namespace jobd::testing
