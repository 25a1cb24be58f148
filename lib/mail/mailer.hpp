// Mailer: sends one message over SMTP with libcurl (SPEC §3 [mail]):
// `smtp://host:port` (STARTTLS when the server offers it), or
// `smtps://host:port` (TLS from the start). Used by the `email` handler
// and by notices, each on its own thread; a Mailer is immutable and its
// send() may be called from any thread.
#pragma once

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace jobd::mail {

struct MailMessage {
  std::string from;
  std::vector<std::string> to;
  std::vector<std::string> cc;
  std::string subject;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones
  std::string message_id;                                    // without <>
};

struct SendResult {
  enum class Kind { kSent, kTemporary, kPermanent };
  Kind kind = Kind::kSent;
  long smtp_code = 0;  // the server's last reply code, 0 when none came
  // The server's last reply as it sent it ("550 5.1.1 No such user"; the
  // lines of a multi-line reply joined by spaces, at most 512 bytes), or
  // "" when none came.
  std::string server_reply;
  std::string error;  // libcurl's words
  // What went wrong in one line: the server's reply when one came, else
  // libcurl's words.
  std::string describe() const;
};

class Mailer {
 public:
  explicit Mailer(config::MailSettings settings);

  // kTemporary: no connection, a timeout, or a 4xx reply (try again);
  // kPermanent: a 5xx reply (the message will not be taken as it is).
  // Once *abort turns true (from another thread) the send gives up within
  // about a second, as kTemporary.
  SendResult send(const MailMessage& message, const std::atomic<bool>* abort = nullptr) const;

  const config::MailSettings& settings() const { return settings_; }
  // The sender: from_address, else jobd@<this host>.
  std::string fromAddress() const;

  // RFC 5322 text with CRLF line ends: headers, blank line, body.
  static std::string render(const MailMessage& message);
  // local@domain, no white space, no control characters, no <>,
  // nothing a header or an SMTP command could be split at.
  static bool validAddress(const std::string& address);
  // No CR or LF: a header value cannot start another header.
  static bool validHeaderText(const std::string& text);

 private:
  config::MailSettings settings_;
};

}  // namespace jobd::mail
