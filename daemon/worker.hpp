// `jobd __worker`: the child side of a process runner (SPEC §3 `runner =
// process`; the protocol is in runtime/worker_protocol.hpp). Started by the
// daemon with the protocol socket on descriptor 3; not a command for people.
#pragma once

namespace jobd::cli {

// Serves jobs until the daemon closes the socket; returns the exit status.
int runWorker();

}  // namespace jobd::cli
