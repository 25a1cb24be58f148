// store::redactConninfo (store/database.hpp): what the daemon logs of its
// connection strings never holds a secret.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace jobd::store
