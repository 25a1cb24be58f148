#include "runtime/oops_file.hpp"

#include <spdlog/spdlog.h>

#include <ctime>
#include <filesystem>
#include <fstream>

#include "core/errors.hpp"
#include "core/log.hpp"

namespace jobd::runtime {
namespace {

// The current UTC time in strftime's format (OOPS dates are UTC, SPEC §7).
std::string utcNow(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, format, &tm);
  return buffer;
}

}  // namespace

void fileOops(const std::string& oops_dir, const OopsReport& oops) {
  if (oops_dir.empty()) {
    return;
  }
  try {
    std::filesystem::path folder = std::filesystem::path(oops_dir) / utcNow("%Y-%m-%d");
    std::filesystem::create_directories(folder);
    std::ofstream out(folder / oops.id);
    out << oopsJson(oops, utcNow("%Y-%m-%dT%H:%M:%SZ")).dump(2) << "\n";
    if (!out) {
      throw std::runtime_error("write failed");
    }
  } catch (const std::exception& e) {
    logs::warn("OOPS_FILE_FAILED {} in {}: {}", oops.id, oops_dir, errorLine(e.what()));
  }
}

}  // namespace jobd::runtime
