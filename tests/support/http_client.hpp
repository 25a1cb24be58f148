// HTTP GET for tests of the daemon's listener (libcurl, as the daemon's
// mail code uses). Blocking, one request per call, any test thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "process.hpp"

namespace jobd::testing {

// The address a daemon logged as HTTP_LISTENING (text, keyvalue or JSON
// log), as http://host:port; "" (and a test failure) when it never did.
std::string baseUrl(Process& daemon);
// The same for the dashboard's listener (DASHBOARD_LISTENING).
std::string dashboardUrl(Process& daemon);

struct HttpReply {
  int status = 0;  // 0 when no answer came
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string error;                           // curl's, when status is 0
};

HttpReply httpGet(const std::string& url, long timeout_ms = 10000,
                  const std::vector<std::string>& headers = {});
// A POST of an application/x-www-form-urlencoded body (a form's fields).
HttpReply httpPost(const std::string& url, const std::string& form,
                   const std::vector<std::string>& headers = {});
// Either: a GET when form is null.
HttpReply httpRequest(const std::string& url, const std::string* form, long timeout_ms,
                      const std::vector<std::string>& headers);

// The total of a Server-Timing header ("... total;dur=12.3"), in ms; -1
// when absent.
double serverTimingTotal(const HttpReply& reply);

}  // namespace jobd::testing
