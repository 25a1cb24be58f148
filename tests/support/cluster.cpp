#include "cluster.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>

#include "process.hpp"

namespace jobd::testing {

std::vector<std::string> cluster() {
  ProcessResult list = runProcess({"pg_lsclusters", "-h"});
  std::istringstream line(list.out);
  std::string version, name;
  line >> version >> name;
  if (version.empty() || name.empty()) {
    throw std::runtime_error("no PostgreSQL cluster found: " + list.out + list.err);
  }
  return {version, name};
}

void clusterCtl(const std::string& action, const std::string& mode) {
  std::vector<std::string> c = cluster();
  std::vector<std::string> argv = {"pg_ctlcluster", c[0], c[1], action};
  if (action != "start") {
    argv.insert(argv.end(), {"-m", mode});
  }
  ProcessResult result = runProcess(argv, {{}, {}, std::chrono::seconds(120)});
  if (result.exit_code != 0) {
    ADD_FAILURE() << "pg_ctlcluster " << action << " -m " << mode << ": " << result.out
                  << result.err;
  }
}

ClusterGuard::~ClusterGuard() {
  std::vector<std::string> c = cluster();
  runProcess({"pg_ctlcluster", c[0], c[1], "start"});
}

}  // namespace jobd::testing
