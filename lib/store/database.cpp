#include "store/database.hpp"

#include <libpq-fe.h>

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
    std::string value = std::string(o->keyword) == "password" ? "********" : o->val;
    out += (out.empty() ? "" : " ") + std::string(o->keyword) + "=" + value;
  }
  PQconninfoFree(options);
  return out.empty() ? "(libpq defaults)" : out;
}

std::string conninfoWithUser(const std::string& conninfo, const std::string& user) {
  if (user.empty()) {
    return conninfo;
  }
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    throw Error("cannot parse the connection string " + redactConninfo(conninfo));
  }
  auto quoted = [](const std::string& value) {
    std::string out = "'";
    for (char c : value) {
      if (c == '\\' || c == '\'') {
        out += '\\';
      }
      out += c;
    }
    return out + "'";
  };
  std::string out;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && std::string(o->keyword) != "user") {
      out += std::string(o->keyword) + "=" + quoted(o->val) + " ";
    }
  }
  PQconninfoFree(options);
  return out + "user=" + quoted(user);
}

std::unique_ptr<pqxx::connection> connect(const std::string& conninfo,
                                          std::string_view application_name) {
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(conninfo);
  } catch (const pqxx::broken_connection& e) {
    throw Error("cannot connect to the database (" + redactConninfo(conninfo) +
                "): " + errorLine(e.what()));
  }
  conn->set_variable("application_name", conn->quote(std::string(application_name)));
  conn->set_variable("TimeZone", "'UTC'");
  return conn;
}

}  // namespace jobd::store
