#include "store/database.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "core/errors.hpp"

namespace jobd::store {
std::string redactConninfo(const std::string& conninfo) {
  if (conninfo.empty()) {
    return "(libpq defaults)";
  }
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return "(unparsable connection string)";
  }
  // Rebuilt as key=value from the parsed options, so that a password inside
  // a URI's user:password@ part is hidden as well.
  std::string out;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) {
      continue;
    }
    // libpq marks its secrets ("password", "sslpassword") with dispchar "*".
    bool secret = o->dispchar != nullptr && o->dispchar[0] == '*';
    std::string value = secret ? "********" : o->val;
    out += (out.empty() ? "" : " ") + std::string(o->keyword) + "=" + value;
  }
  PQconninfoFree(options);
  return out.empty() ? "(libpq defaults)" : out;
}

namespace {

std::string quoted(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') {
      out += '\\';
    }
    out += c;
  }
  return out + "'";
}

// conninfo (key=value or URI) rebuilt as key=value: its keys but those
// `dropped`, then `added` for each key it does not set itself.
std::string rebuilt(const std::string& conninfo, const std::set<std::string>& dropped,
                    const std::vector<std::pair<std::string, std::string>>& added) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    throw Error("cannot parse the connection string " + redactConninfo(conninfo));
  }
  std::string out;
  std::set<std::string> present;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && dropped.count(o->keyword) == 0) {
      out += std::string(o->keyword) + "=" + quoted(o->val) + " ";
      present.insert(o->keyword);
    }
  }
  PQconninfoFree(options);
  for (const auto& [key, value] : added) {
    if (present.count(key) == 0) {
      out += key + "=" + quoted(value) + " ";
    }
  }
  if (!out.empty()) {
    out.pop_back();
  }
  return out;
}

}  // namespace

std::string conninfoWithUser(const std::string& conninfo, const std::string& user) {
  if (user.empty()) {
    return conninfo;
  }
  // The daemon's password is not the dbuser's. An empty one, set here,
  // also keeps libpq from taking PGPASSWORD, so that it reads the dbuser's
  // entry in the password file (passfile, PGPASSFILE or ~/.pgpass).
  return rebuilt(conninfo, {"user", "password"}, {{"user", user}, {"password", ""}});
}

std::string withNetworkDefaults(const std::string& conninfo) {
  // A dead server host or network is noticed within about a minute
  // instead of the kernel's two hours: connecting gives up after 10 s,
  // and an idle TCP connection is probed after 30 s, every 10 s, three
  // times. What the conninfo or a PG* variable sets wins. (A peer that
  // still acknowledges but never answers, such as a stalled proxy, is
  // beyond TCP's view: the daemon's database threads close a connection
  // whose work runs past database_timeout.)
  std::vector<std::pair<std::string, std::string>> defaults;
  if (std::getenv("PGCONNECT_TIMEOUT") == nullptr) {
    defaults.emplace_back("connect_timeout", "10");
  }
  defaults.insert(
      defaults.end(),
      {{"keepalives_idle", "30"}, {"keepalives_interval", "10"}, {"keepalives_count", "3"}});
  return rebuilt(conninfo, {}, defaults);
}

std::string withConnectTimeoutAtMost(const std::string& conninfo, int seconds) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    throw Error("cannot parse the connection string " + redactConninfo(conninfo));
  }
  const char* set = std::getenv("PGCONNECT_TIMEOUT");
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && std::string_view(o->keyword) == "connect_timeout") {
      set = o->val;
    }
  }
  // What libpq would take: a whole number; 0, negative or none: no limit.
  long current = 0;
  if (set != nullptr) {
    char* end = nullptr;
    errno = 0;
    current = std::strtol(set, &end, 10);
    if (end == set || *end != '\0' || errno != 0) {
      current = 0;
    }
  }
  PQconninfoFree(options);
  if (current > 0 && current <= seconds) {
    return conninfo;
  }
  return rebuilt(conninfo, {"connect_timeout"}, {{"connect_timeout", std::to_string(seconds)}});
}

std::unique_ptr<pqxx::connection> open(const std::string& conninfo, int connect_within) {
  std::string target = withNetworkDefaults(conninfo);
  if (connect_within > 0) {
    target = withConnectTimeoutAtMost(target, std::max(connect_within, 2));
  }
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(target);
  } catch (const pqxx::broken_connection& e) {
    throw Error("cannot connect to the database (" + redactConninfo(conninfo) +
                "): " + errorLine(e.what()));
  }
  // libpqxx 6 reconnects a broken connection by itself at its next use,
  // behind the same object: a new socket that no watchdog knows it has
  // closed already, without its session's deadlines. A daemon thread stuck
  // for ever on such a socket was found by the half-open scenario. jobd
  // opens every connection again itself: a broken one stays broken. (The
  // setter is deprecated along with the reconnection it turns off.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  return conn;
}

void configure(pqxx::connection& conn, std::string_view application_name) {
  conn.set_variable("application_name", conn.quote(std::string(application_name)));
  conn.set_variable("TimeZone", "'UTC'");
  // Times as text (the dashboard's page cursors) in ISO 8601, whatever the
  // server's default.
  conn.set_variable("DateStyle", "'ISO, YMD'");
}

std::unique_ptr<pqxx::connection> connect(const std::string& conninfo,
                                          std::string_view application_name) {
  std::unique_ptr<pqxx::connection> conn = open(conninfo);
  configure(*conn, application_name);
  return conn;
}

void limitTransaction(pqxx::transaction_base& txn, std::chrono::milliseconds statement_timeout,
                      std::chrono::milliseconds idle_in_transaction_timeout) {
  std::string sql;
  if (statement_timeout.count() > 0) {
    sql += "SET LOCAL statement_timeout = " + std::to_string(statement_timeout.count()) + ";";
  }
  if (idle_in_transaction_timeout.count() > 0) {
    sql += "SET LOCAL idle_in_transaction_session_timeout = " +
           std::to_string(idle_in_transaction_timeout.count()) + ";";
  }
  if (!sql.empty()) {
    txn.exec(sql);
  }
}

}  // namespace jobd::store
