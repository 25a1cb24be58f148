// systemd/jobd.service (SPEC §8): it passes `systemd-analyze verify`, its
// sandboxing scores an exposure of 3.0 or lower in `systemd-analyze
// security`, and `cmake --install` puts everything where the unit expects.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "process.hpp"

namespace jobd {
namespace {

using ::testing::HasSubstr;
using testing::runProcess;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The unit as installed, but with ExecStart at the binary under test, in a
// folder of its own (verify checks that the commands exist).
std::string unitForTest() {
  std::string unit = readFile(std::string(JOBD_SOURCE_DIR) + "/systemd/jobd.service");
  unit = std::regex_replace(unit, std::regex("/usr/local/bin/jobd"), testing::jobdBinary());
  std::string dir = ::testing::TempDir() + "jobd_unit_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/jobd.service") << unit;
  return dir + "/jobd.service";
}

TEST(SystemdUnitTest, VerifyPasses) {
  std::string unit = unitForTest();
  testing::ProcessResult result = runProcess({"systemd-analyze", "verify", unit});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_EQ(result.err, "") << "verify has complaints";
}

TEST(SystemdUnitTest, SecurityExposureAtMostThree) {
  std::string unit = unitForTest();
  testing::ProcessResult result =
      runProcess({"systemd-analyze", "security", "--offline=true", "--no-pager", unit});
  std::smatch match;
  std::regex overall(R"(Overall exposure level for jobd\.service: ([0-9.]+))");
  ASSERT_TRUE(std::regex_search(result.out, match, overall)) << result.out << result.err;
  double exposure = std::stod(match[1]);
  std::printf("systemd-analyze security: exposure %.1f\n", exposure);
  EXPECT_LE(exposure, 3.0);
}

TEST(SystemdUnitTest, InstallPutsEverythingInPlace) {
  std::string dest = ::testing::TempDir() + "jobd_install_" + std::to_string(getpid());
  std::filesystem::remove_all(dest);
  testing::ProcessOptions options;
  options.env["DESTDIR"] = dest;
  testing::ProcessResult result =
      runProcess({"cmake", "--install", JOBD_BUILD_DIR, "--prefix", "/usr/local"}, options);
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  for (const char* path :
       {"/usr/local/bin/jobd", "/etc/jobd/jobd.conf", "/etc/systemd/system/jobd.service",
        "/etc/sysusers.d/jobd.conf", "/usr/local/share/doc/jobd/README.md"}) {
    EXPECT_TRUE(std::filesystem::exists(dest + path)) << path;
  }
  std::string unit = readFile(dest + "/etc/systemd/system/jobd.service");
  EXPECT_THAT(unit, HasSubstr("ExecStart=/usr/local/bin/jobd --config /etc/jobd/jobd.conf serve"));
  // A second install keeps an operator's configuration.
  std::ofstream(dest + "/etc/jobd/jobd.conf") << "[noop]\n";
  ASSERT_EQ(runProcess({"cmake", "--install", JOBD_BUILD_DIR}, options).exit_code, 0);
  EXPECT_EQ(readFile(dest + "/etc/jobd/jobd.conf"), "[noop]\n");
  std::filesystem::remove_all(dest);
}

}  // namespace
}  // namespace jobd
