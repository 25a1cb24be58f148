// store::redactConninfo (store/database.hpp): what the daemon logs of its
// connection strings never holds a secret.
#include <gtest/gtest.h>

#include <cstdlib>

#include "store/database.hpp"

namespace jobd::store {
namespace {

// Every secret libpq knows (password, sslpassword), in key=value and URI
// forms, is masked; the rest is kept (issue 18, item 10: sslpassword was
// logged as written).
TEST(RedactTest, SecretsAreMaskedInEveryForm) {
  std::string kv = redactConninfo(
      "host=db dbname=app user=jobd password=hunter2 sslpassword=keypass sslmode=require");
  EXPECT_EQ(kv.find("hunter2"), std::string::npos) << kv;
  EXPECT_EQ(kv.find("keypass"), std::string::npos) << kv;
  EXPECT_NE(kv.find("host=db"), std::string::npos) << kv;
  EXPECT_NE(kv.find("sslmode=require"), std::string::npos) << kv;
  std::string uri = redactConninfo("postgresql://jobd:hunter2@db/app?sslpassword=keypass");
  EXPECT_EQ(uri.find("hunter2"), std::string::npos) << uri;
  EXPECT_EQ(uri.find("keypass"), std::string::npos) << uri;
  EXPECT_NE(uri.find("user=jobd"), std::string::npos) << uri;
}

// A section's dbuser gets none of the daemon's password, and an empty one
// that keeps libpq off PGPASSWORD, so that the dbuser's pgpass entry is
// read (issue 18, item 5); the rest of the conninfo is kept.
TEST(ConninfoWithUserTest, TheDaemonsPasswordStaysBehind) {
  for (const std::string& conninfo :
       {std::string("host=db dbname=app user=jobd password=hunter2 passfile=/etc/jobd/pgpass"),
        std::string("postgresql://jobd:hunter2@db/app?passfile=/etc/jobd/pgpass")}) {
    SCOPED_TRACE(conninfo);
    std::string job = conninfoWithUser(conninfo, "app_jobs");
    EXPECT_EQ(job.find("hunter2"), std::string::npos) << job;
    EXPECT_NE(job.find("user='app_jobs'"), std::string::npos) << job;
    EXPECT_NE(job.find("password=''"), std::string::npos) << job;
    EXPECT_NE(job.find("host='db'"), std::string::npos) << job;
    EXPECT_NE(job.find("passfile='/etc/jobd/pgpass'"), std::string::npos) << job;
  }
  EXPECT_EQ(conninfoWithUser("host=db password=x", ""), "host=db password=x");
}

// A thread job's connect is capped by its timeout (job_executor.cpp): a
// longer or unlimited connect_timeout is lowered, a shorter one kept.
TEST(ConnectTimeoutTest, OnlyALongerOrUnlimitedOneIsLowered) {
  unsetenv("PGCONNECT_TIMEOUT");
  EXPECT_EQ(withConnectTimeoutAtMost("host=db connect_timeout=10", 3),
            "host='db' connect_timeout='3'");
  EXPECT_EQ(withConnectTimeoutAtMost("host=db connect_timeout=0", 3),
            "host='db' connect_timeout='3'");
  EXPECT_EQ(withConnectTimeoutAtMost("host=db connect_timeout=5s", 3),
            "host='db' connect_timeout='3'");
  EXPECT_EQ(withConnectTimeoutAtMost("host=db", 3), "host='db' connect_timeout='3'");
  EXPECT_EQ(withConnectTimeoutAtMost("host=db connect_timeout=2", 3), "host=db connect_timeout=2");
  EXPECT_EQ(withConnectTimeoutAtMost("postgresql://db/app?connect_timeout=60", 5),
            "dbname='app' host='db' connect_timeout='5'");
  setenv("PGCONNECT_TIMEOUT", "2", 1);
  EXPECT_EQ(withConnectTimeoutAtMost("host=db", 3), "host=db");
  setenv("PGCONNECT_TIMEOUT", "30", 1);
  EXPECT_EQ(withConnectTimeoutAtMost("host=db", 3), "host='db' connect_timeout='3'");
  unsetenv("PGCONNECT_TIMEOUT");
}

}  // namespace
}  // namespace jobd::store
