#include "core/text.hpp"

#include <gtest/gtest.h>

namespace jobd {
namespace {

TEST(StorableTextTest, KeepsValidUtf8) {
  EXPECT_EQ(storableText("plain ascii"), "plain ascii");
  EXPECT_EQ(storableText("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
}

TEST(StorableTextTest, ReplacesWhatPostgresRefuses) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(storableText(std::string("a\0b", 3)), "a" + r + "b");     // NUL
  EXPECT_EQ(storableText("\xFF\xFE"), r + r);                         // never UTF-8
  EXPECT_EQ(storableText("tail cut \xE2\x82"), "tail cut " + r + r);  // a split character
  EXPECT_EQ(storableText("\xC0\xAF"), r + r);                         // overlong '/'
  EXPECT_EQ(storableText("\xED\xA0\x80"), r + r + r);                 // a surrogate
  EXPECT_EQ(storableText("\xF4\x90\x80\x80"), r + r + r + r);         // past U+10FFFF
}

}  // namespace
}  // namespace jobd
