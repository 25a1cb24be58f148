#include "config/argv.hpp"

#include <stdexcept>

namespace jobd::config {

std::vector<std::string> splitWords(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  enum class Quote { kNone, kSingle, kDouble } quote = Quote::kNone;

  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    switch (quote) {
      case Quote::kSingle:
        if (c == '\'') {
          quote = Quote::kNone;
        } else {
          word += c;
        }
        continue;
      case Quote::kDouble:
        if (c == '"') {
          quote = Quote::kNone;
        } else if (c == '\\' && i + 1 < text.size() &&
                   (text[i + 1] == '"' || text[i + 1] == '\\')) {
          word += text[++i];
        } else {
          word += c;
        }
        continue;
      case Quote::kNone:
        break;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) {
        words.push_back(std::move(word));
        word.clear();
        in_word = false;
      }
      continue;
    }
    in_word = true;
    if (c == '\'') {
      quote = Quote::kSingle;
    } else if (c == '"') {
      quote = Quote::kDouble;
    } else if (c == '\\') {
      if (i + 1 == text.size()) {
        throw std::invalid_argument("trailing backslash");
      }
      word += text[++i];
    } else {
      word += c;
    }
  }
  if (quote == Quote::kSingle) {
    throw std::invalid_argument("unterminated single quote");
  }
  if (quote == Quote::kDouble) {
    throw std::invalid_argument("unterminated double quote");
  }
  if (in_word) {
    words.push_back(std::move(word));
  }
  return words;
}

}  // namespace jobd::config
