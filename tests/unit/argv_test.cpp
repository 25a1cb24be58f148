#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/argv.hpp"

namespace jobd::config {
namespace {

using ::testing::ElementsAre;

// Words break at white space; quotes group as in a shell; no shell runs.
TEST(ArgvTest, SplitsLikeAShell) {
  EXPECT_THAT(splitWords("/bin/echo a  b\tc"), ElementsAre("/bin/echo", "a", "b", "c"));
  EXPECT_THAT(splitWords("sh -c 'echo $HOME; exit 3'"),
              ElementsAre("sh", "-c", "echo $HOME; exit 3"));
  EXPECT_THAT(splitWords(R"(say "a \"quoted\" word" x\ y)"),
              ElementsAre("say", "a \"quoted\" word", "x y"));
  EXPECT_THAT(splitWords("a''b \"\""), ElementsAre("ab", ""));
  EXPECT_TRUE(splitWords("   ").empty());
}

// Unterminated quotes and a trailing backslash are errors, not guesses.
TEST(ArgvTest, RefusesUnterminatedQuotes) {
  EXPECT_THROW(splitWords("echo 'a"), std::invalid_argument);
  EXPECT_THROW(splitWords("echo \"a"), std::invalid_argument);
  EXPECT_THROW(splitWords("echo a\\"), std::invalid_argument);
}

}  // namespace
}  // namespace jobd::config
