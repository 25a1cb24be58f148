// Opening connections: the conninfo rules every jobd connection follows, a
// conninfo with its password hidden for messages, and the mapping of libpq's
// connection failures to jobd errors. Used by the CLI and the daemon's
// database threads; each connection belongs to the thread that opened it.
#pragma once

#include <chrono>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <string_view>

namespace jobd::store {

// conninfo with every password replaced by "********", for logs and errors.
// Works for key=value strings and postgresql:// URIs.
std::string redactConninfo(const std::string& conninfo);

// conninfo with its user replaced by user (unchanged when user is empty),
// as a key=value string; works for URIs too. The daemon's password is not
// carried over: libpq reads the user's own from the password file.
std::string conninfoWithUser(const std::string& conninfo, const std::string& user);

// conninfo as key=value with jobd's network defaults added where it sets
// none: connect_timeout (unless PGCONNECT_TIMEOUT is set) and TCP
// keepalives. Throws jobd::Error when it cannot be parsed.
std::string withNetworkDefaults(const std::string& conninfo);

// conninfo as key=value with connect_timeout at most `seconds`: the one it
// sets, or else PGCONNECT_TIMEOUT's, is kept when it is shorter (0, a value
// libpq would not take, or none: no limit, replaced).
std::string withConnectTimeoutAtMost(const std::string& conninfo, int seconds);

// Connects with withNetworkDefaults() (empty conninfo: libpq's PG*
// defaults); no query is sent yet, so connect_timeout bounds all of it.
// connect_within > 0 lowers connect_timeout to that many seconds (2 at
// least, libpq's least) where the conninfo, PGCONNECT_TIMEOUT or the
// default allow longer. Throws jobd::Error naming the (redacted) target
// when it cannot connect.
std::unique_ptr<pqxx::connection> open(const std::string& conninfo, int connect_within = 0);

// The settings every jobd session makes: application_name, and the time
// zone UTC, so that every timestamp jobd prints is UTC. These are queries:
// a caller that guards its connection against a peer that stops answering
// (a watchdog, a job's canceller) puts its guard in place between open()
// and configure().
void configure(pqxx::connection& conn, std::string_view application_name);

// open(), then configure().
std::unique_ptr<pqxx::connection> connect(const std::string& conninfo,
                                          std::string_view application_name);

// The server-side deadlines of one transaction (SET LOCAL, one round trip),
// for a connection that may lead to a transaction pooler, where a session
// setting would stay on a server connection other clients share. A direct
// connection sets them once per session instead. Zero leaves a setting as
// it is.
void limitTransaction(pqxx::transaction_base& txn, std::chrono::milliseconds statement_timeout,
                      std::chrono::milliseconds idle_in_transaction_timeout);

}  // namespace jobd::store
