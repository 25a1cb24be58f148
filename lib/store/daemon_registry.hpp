// The jobd.daemon rows (migration 0004): each serving daemon says every
// few seconds that it is alive and what it serves, and removes its row at a
// clean stop, so that `jobd status` and the dashboard list live daemons,
// idle ones included. Called on the daemon's database thread.
#pragma once

#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace jobd::store {

struct DaemonBeat {
  std::string owner;  // the lease_owner it writes
  std::string hostname;
  int pid = 0;
  std::string version;
  std::vector<std::string> sections;
  int workers = 0;
  int running = 0;
  bool draining = false;
};

// Inserts or refreshes the row; one autocommit statement.
void writeHeartbeat(pqxx::connection_base& conn, const DaemonBeat& beat);
// Deletes the row of a daemon that stops cleanly.
void signOff(pqxx::connection_base& conn, const std::string& owner);

}  // namespace jobd::store
