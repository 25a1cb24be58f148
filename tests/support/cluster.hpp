// The PostgreSQL cluster the tests run against (pg_virtualenv's), stopped,
// started and crashed with pg_ctlcluster by the tests that may (outage/ and
// reliability/, which run alone).
#pragma once

#include <string>
#include <vector>

namespace jobd::testing {

// {"15", "regress"}: the cluster on PGPORT, else the first one
// pg_lsclusters knows.
std::vector<std::string> cluster();

// pg_ctlcluster <version> <name> <action> -m <mode>; a failure is a test
// failure (ADD_FAILURE) that names the action and what it printed. After a
// stop, the cluster's port is held by a listening socket of the test's own
// (which accepts and closes every connection) until the next start, so that
// no cluster made meanwhile can take it.
void clusterCtl(const std::string& action, const std::string& mode = "fast");

// Brings the cluster back if a test fails while it is down.
struct ClusterGuard {
  ClusterGuard() = default;
  ClusterGuard(const ClusterGuard&) = delete;
  ClusterGuard& operator=(const ClusterGuard&) = delete;
  ~ClusterGuard();
};

}  // namespace jobd::testing
