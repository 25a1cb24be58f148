#include "http_client.hpp"

#include <curl/curl.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <regex>

namespace jobd::testing {
namespace {

size_t onBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

size_t onHeader(char* data, size_t size, size_t count, void* user) {
  std::string line(data, size * count);
  std::size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t\r\n") + 1);
    (*static_cast<std::map<std::string, std::string>*>(user))[name] = value;
  }
  return size * count;
}

}  // namespace

HttpReply httpGet(const std::string& url, long timeout_ms,
                  const std::vector<std::string>& headers) {
  return httpRequest(url, nullptr, timeout_ms, headers);
}

HttpReply httpPost(const std::string& url, const std::string& form,
                   const std::vector<std::string>& headers) {
  return httpRequest(url, &form, 10000, headers);
}

HttpReply httpRequest(const std::string& url, const std::string* form, long timeout_ms,
                      const std::vector<std::string>& headers) {
  HttpReply reply;
  CURL* curl = curl_easy_init();
  if (form != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form->c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(form->size()));
  }
  curl_slist* header_list = nullptr;
  for (const std::string& header : headers) {
    header_list = curl_slist_append(header_list, header.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    reply.status = static_cast<int>(status);
  } else {
    reply.error = curl_easy_strerror(rc);
  }
  curl_easy_cleanup(curl);
  curl_slist_free_all(header_list);
  return reply;
}

double serverTimingTotal(const HttpReply& reply) {
  auto it = reply.headers.find("server-timing");
  if (it == reply.headers.end()) {
    return -1;
  }
  std::size_t at = it->second.find("total;dur=");
  return at == std::string::npos ? -1 : std::stod(it->second.substr(at + 10));
}

namespace {

std::string listenerUrl(Process& daemon, const std::string& event) {
  EXPECT_TRUE(daemon.waitForOutput(event)) << daemon.errSoFar();
  std::smatch m;
  std::string log = daemon.errSoFar();
  if (!std::regex_search(log, m, std::regex(event + "\"?,? ?\"?address\"?[=:]\"?([^ \"]+)"))) {
    ADD_FAILURE() << "no " << event << " address in the log";
    return "";
  }
  return "http://" + m[1].str();
}

}  // namespace

std::string baseUrl(Process& daemon) {
  return listenerUrl(daemon, "HTTP_LISTENING");
}

std::string dashboardUrl(Process& daemon) {
  return listenerUrl(daemon, "DASHBOARD_LISTENING");
}

}  // namespace jobd::testing
