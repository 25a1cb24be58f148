#include "core/host.hpp"

#include <unistd.h>

namespace jobd {

std::string hostName() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0) {
    return "localhost";
  }
  return buffer;
}

}  // namespace jobd
