#include "mail/mailer.hpp"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>

#include "core/host.hpp"

namespace jobd::mail {
namespace {

void initCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string base64(const std::string& in) {
  static const char* const kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += {kChars[(v >> 18) & 63], kChars[(v >> 12) & 63], kChars[(v >> 6) & 63], kChars[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {kChars[(v >> 18) & 63], kChars[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {kChars[(v >> 18) & 63], kChars[(v >> 12) & 63], kChars[(v >> 6) & 63], '='};
  }
  return out;
}

// RFC 2047: a subject that is not plain ASCII goes as an encoded word.
std::string encodeHeader(const std::string& text) {
  for (unsigned char c : text) {
    if (c >= 0x80) {
      return "=?UTF-8?B?" + base64(text) + "?=";
    }
  }
  return text;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    out += (out.empty() ? "" : ", ") + item;
  }
  return out;
}

std::string rfc5322Date() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buffer;
}

struct Upload {
  const std::string& text;
  std::size_t offset = 0;
};

std::size_t readUpload(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* upload = static_cast<Upload*>(user);
  std::size_t n = std::min(size * count, upload->text.size() - upload->offset);
  std::copy_n(upload->text.data() + upload->offset, n, buffer);
  upload->offset += n;
  return n;
}

}  // namespace

Mailer::Mailer(config::MailSettings settings) : settings_(std::move(settings)) {
  initCurlOnce();
}

std::string Mailer::fromAddress() const {
  return settings_.from_address.empty() ? "jobd@" + hostName() : settings_.from_address;
}

bool Mailer::validAddress(const std::string& address) {
  std::size_t at = address.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == address.size() || address.size() > 254) {
    return false;
  }
  for (unsigned char c : address) {
    if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == '(' || c == ')' ||
        c == '"' || c == '\\' || c == ';') {
      return false;
    }
  }
  return address.find('.', at) != std::string::npos || address.substr(at + 1) == "localhost";
}

bool Mailer::validHeaderText(const std::string& text) {
  return text.find_first_of("\r\n") == std::string::npos;
}

std::string Mailer::render(const MailMessage& m) {
  std::string out;
  auto header = [&](const std::string& name, const std::string& value) {
    out += name + ": " + value + "\r\n";
  };
  header("From", m.from);
  header("To", joined(m.to));
  if (!m.cc.empty()) {
    header("Cc", joined(m.cc));
  }
  header("Subject", encodeHeader(m.subject));
  header("Date", rfc5322Date());
  header("Message-ID", "<" + m.message_id + ">");
  header("MIME-Version", "1.0");
  header("Content-Type", "text/plain; charset=utf-8");
  header("Content-Transfer-Encoding", "8bit");
  for (const auto& [name, value] : m.headers) {
    header(name, encodeHeader(value));
  }
  out += "\r\n";
  for (std::size_t i = 0; i < m.body.size(); ++i) {
    if (m.body[i] == '\n' && (i == 0 || m.body[i - 1] != '\r')) {
      out += "\r\n";
    } else {
      out += m.body[i];
    }
  }
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) {
    out += "\r\n";
  }
  return out;
}

namespace {

// Keeps the server's last complete reply from libcurl's protocol trace:
// SMTP replies arrive as CURLINFO_HEADER_IN, one line per call, "NNN-"
// for every line of a multi-line reply but the last, "NNN ".
struct ReplyTrace {
  std::string current;
  std::vector<std::string> replies;  // the last few, oldest first
};

int traceReplies(CURL*, curl_infotype type, char* data, std::size_t size, void* user) {
  if (type != CURLINFO_HEADER_IN) {
    return 0;
  }
  auto* trace = static_cast<ReplyTrace*>(user);
  std::string line(data, size);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.pop_back();
  }
  for (char& c : line) {
    if (static_cast<unsigned char>(c) < ' ' || c == 0x7f) {
      c = ' ';
    }
  }
  bool last_line = line.size() < 4 || line[3] != '-';
  if (trace->current.empty()) {
    trace->current = line;
  } else if (line.size() > 4) {
    trace->current += ' ' + line.substr(4);  // the code is said once
  }
  if (last_line) {
    constexpr std::size_t kLongest = 512;
    constexpr std::size_t kKept = 4;  // the failing one, QUIT's, and some
    trace->replies.push_back(trace->current.substr(0, kLongest));
    if (trace->replies.size() > kKept) {
      trace->replies.erase(trace->replies.begin());
    }
    trace->current.clear();
  }
  return 0;
}

}  // namespace

std::string SendResult::describe() const {
  if (!server_reply.empty()) {
    return "SMTP " + server_reply;
  }
  if (smtp_code != 0) {
    return "SMTP " + std::to_string(smtp_code) + ": " + error;
  }
  return error;
}

namespace {

// libcurl's progress callback, about once a second even while it waits:
// non-zero aborts the transfer.
int abortWhenAsked(void* abort, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(abort)->load() ? 1 : 0;
}

}  // namespace

SendResult Mailer::send(const MailMessage& message, const std::atomic<bool>* abort) const {
  SendResult result;
  // Everything the handle points at is declared before it, so that it
  // outlives curl_easy_cleanup (which may still write a QUIT and trace it).
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> recipients(nullptr, curl_slist_free_all);
  for (const std::vector<std::string>* list : {&message.to, &message.cc}) {
    for (const std::string& address : *list) {
      recipients.reset(curl_slist_append(recipients.release(), ("<" + address + ">").c_str()));
    }
  }
  std::string text = render(message);
  Upload upload{text};
  std::string from = "<" + message.from + ">";
  char error[CURL_ERROR_SIZE] = {};
  // The trace gives the server's own reply text, which the error buffer
  // does not ("RCPT failed: 550").
  ReplyTrace trace;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    return {SendResult::Kind::kTemporary, 0, "", "curl_easy_init failed"};
  }
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, settings_.smtp_url.c_str());
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, recipients.get());
  curl_easy_setopt(c, CURLOPT_READFUNCTION, readUpload);
  curl_easy_setopt(c, CURLOPT_READDATA, &upload);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(text.size()));
  // STARTTLS when the server offers it; smtps:// is TLS from the start.
  curl_easy_setopt(c, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_TRY));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, traceReplies);
  curl_easy_setopt(c, CURLOPT_DEBUGDATA, &trace);
  curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
  if (abort != nullptr) {
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abortWhenAsked);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(abort));
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }
  CURLcode code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &result.smtp_code);
  if (code == CURLE_OK) {
    return result;
  }
  result.error = error[0] != '\0' ? error : curl_easy_strerror(code);
  // The reply that failed, not QUIT's "221 Bye" after it.
  const std::string reply_code = std::to_string(result.smtp_code);
  for (auto reply = trace.replies.rbegin(); result.smtp_code != 0 && reply != trace.replies.rend();
       ++reply) {
    if (reply->rfind(reply_code, 0) == 0) {
      result.server_reply = *reply;
      break;
    }
  }
  if (result.smtp_code >= 500 && result.smtp_code < 600) {
    result.kind = SendResult::Kind::kPermanent;
  } else {
    result.kind = SendResult::Kind::kTemporary;  // 4xx, or no reply at all
  }
  return result;
}

}  // namespace jobd::mail
