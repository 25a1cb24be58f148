#include "http/html.hpp"

#include <fmt/format.h>

#include <cmath>
#include <ctime>

#include "core/text.hpp"

namespace jobd::http {
namespace {

constexpr const char* kStyle = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f5f6f8}
header{background:#1d2433;color:#fff;padding:10px 20px;display:flex;flex-wrap:wrap;gap:8px 20px;
align-items:baseline}
header h1{font-size:18px;margin:0}header a{color:#9cc3ff}
header form{margin-left:auto}header input{font:inherit;padding:2px 6px;width:14em;max-width:60vw}
main{padding:10px 20px}h2{font-size:15px;margin:18px 0 6px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;min-width:50%}
th,td{padding:4px 10px;border-bottom:1px solid #e2e5ea;text-align:left;vertical-align:top}
th{background:#eceef2;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b3261e;font-weight:600}.muted{color:#6b7280}
a:focus-visible,input:focus-visible,button:focus-visible{outline:2px solid #2563eb;
outline-offset:1px}
time{text-decoration:underline dotted #9ca3af;white-space:nowrap}
td time{display:inline-block;min-width:5.5em}td{font-variant-numeric:tabular-nums}
nav.lists a{margin-right:12px}
pre{background:#fff;border:1px solid #e2e5ea;padding:10px;overflow:auto}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:10px}
figure.chart{margin:0;background:#fff;border:1px solid #e2e5ea;padding:6px 8px}
figure.chart svg{display:block;width:100%;height:auto;aspect-ratio:600/120;overflow:visible}
figure.chart text{font-size:17px;fill:#6b7280}figure.chart .axis{stroke:#9ca3af}
figure.chart .grid{stroke:#e2e5ea}figcaption{font-weight:600;font-size:13px}
.key{font-weight:400;margin-left:10px;color:#4b5563}
.key i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
nav.spans a,nav.spans b{margin-right:10px}
svg.spark{display:block;width:120px;height:28px}
@media (max-width:600px){main{padding:8px}header{padding:8px}th,td{padding:3px 6px}
table{display:block;overflow-x:auto;min-width:0;max-width:100%}}
)css";

// Two digits at s[at..at+1], or -1.
int twoDigits(const std::string& s, std::size_t at) {
  if (at + 2 > s.size() || !std::isdigit(static_cast<unsigned char>(s[at])) ||
      !std::isdigit(static_cast<unsigned char>(s[at + 1]))) {
    return -1;
  }
  return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

std::string plural(long long n, const char* unit) {
  return fmt::format("{} {}", n, unit);
}

}  // namespace

std::string escapeHtml(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string urlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::optional<std::string> queryParam(const std::string& query, const std::string& name) {
  std::size_t start = 0;
  while (start <= query.size()) {
    std::size_t end = query.find('&', start);
    std::string pair = query.substr(start, end == std::string::npos ? end : end - start);
    std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      std::string raw = eq == std::string::npos ? "" : pair.substr(eq + 1);
      std::string out;
      for (std::size_t i = 0; i < raw.size(); ++i) {
        auto hex = [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) != 0
                     ? (std::isdigit(static_cast<unsigned char>(c)) != 0 ? c - '0'
                                                                         : (c | 0x20) - 'a' + 10)
                     : -1;
        };
        if (raw[i] == '+') {
          out += ' ';
        } else if (raw[i] == '%' && i + 2 < raw.size() && hex(raw[i + 1]) >= 0 &&
                   hex(raw[i + 2]) >= 0) {
          out += static_cast<char>(hex(raw[i + 1]) * 16 + hex(raw[i + 2]));
          i += 2;
        } else {
          out += raw[i];
        }
      }
      return out;
    }
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  return std::nullopt;
}

namespace html {

std::string text(const nlohmann::json& value) {
  return escapeHtml(jsonText(value));
}

std::string cell(const nlohmann::json& value) {
  return "<td>" + text(value) + "</td>";
}

std::string grouped(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) {
      out += ',';
    }
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string jobLink(const nlohmann::json& id) {
  std::string shown = text(id);
  return "<a href=\"/job/" + shown + "\">" + shown + "</a>";
}

std::string oopsLink(const nlohmann::json& id) {
  if (id.is_null()) {
    return "-";
  }
  std::string shown = text(id);
  return "<a class=\"oops\" href=\"/oops/" + shown + "\">" + shown + "</a>";
}

std::string typeLink(const nlohmann::json& job_type) {
  return "<a href=\"/type/" + escapeHtml(urlEncode(jsonText(job_type))) + "\">" + text(job_type) +
         "</a>";
}

std::optional<std::int64_t> epochMicros(const nlohmann::json& timestamp) {
  if (!timestamp.is_string()) {
    return std::nullopt;
  }
  const std::string& s = timestamp.get_ref<const std::string&>();
  // YYYY-MM-DDTHH:MM:SS
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  int century = twoDigits(s, 0);
  int year2 = twoDigits(s, 2);
  std::tm tm{};
  tm.tm_mon = twoDigits(s, 5) - 1;
  tm.tm_mday = twoDigits(s, 8);
  tm.tm_hour = twoDigits(s, 11);
  tm.tm_min = twoDigits(s, 14);
  tm.tm_sec = twoDigits(s, 17);
  if (century < 0 || year2 < 0 || tm.tm_mon < 0 || tm.tm_mday < 0 || tm.tm_hour < 0 ||
      tm.tm_min < 0 || tm.tm_sec < 0) {
    return std::nullopt;
  }
  tm.tm_year = century * 100 + year2 - 1900;
  std::size_t at = 19;
  std::int64_t fraction = 0;
  if (at < s.size() && s[at] == '.') {
    int digits = 0;
    for (++at; at < s.size() && std::isdigit(static_cast<unsigned char>(s[at])); ++at) {
      if (digits++ < 6) {
        fraction = fraction * 10 + (s[at] - '0');
      }
    }
    for (; digits < 6; ++digits) {
      fraction *= 10;
    }
  }
  std::int64_t offset = 0;  // seconds east of UTC
  if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    // +HH, +HH:MM or +HHMM
    int hours = twoDigits(s, at + 1);
    std::size_t next = at + 3;
    int minutes = 0;
    if (next < s.size() && s[next] == ':') {
      minutes = twoDigits(s, next + 1);
      next += 3;
    } else if (next < s.size()) {
      minutes = twoDigits(s, next);
      next += 2;
    }
    if (hours < 0 || minutes < 0) {
      return std::nullopt;
    }
    offset = static_cast<std::int64_t>(s[at] == '-' ? -1 : 1) * (hours * 3600LL + minutes * 60LL);
    at = next;
  } else if (at < s.size() && s[at] == 'Z') {
    ++at;
  }
  if (at != s.size()) {
    return std::nullopt;  // more than a time: text that starts with one
  }
  std::int64_t seconds = static_cast<std::int64_t>(timegm(&tm)) - offset;
  return seconds * 1000000 + fraction;
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds)) {
    return "-";
  }
  double s = std::fabs(seconds);
  std::string sign = seconds < 0 ? "-" : "";
  if (std::round(s * 1000) < 1000) {
    return sign + fmt::format("{:.0f} ms", s * 1000);
  }
  if (s < 10) {
    return sign + fmt::format("{:.1f} s", s);
  }
  if (s < 60) {
    return sign + fmt::format("{:.0f} s", std::floor(s));
  }
  auto whole = static_cast<long long>(s);
  if (whole < 3600) {
    return sign + plural(whole / 60, "min") + (whole % 60 ? " " + plural(whole % 60, "s") : "");
  }
  if (whole < 86400) {
    return sign + plural(whole / 3600, "h") +
           (whole % 3600 / 60 ? " " + plural(whole % 3600 / 60, "min") : "");
  }
  return sign + plural(whole / 86400, "d") +
         (whole % 86400 / 3600 ? " " + plural(whole % 86400 / 3600, "h") : "");
}

std::string when(const nlohmann::json& timestamp, const nlohmann::json& now) {
  if (timestamp.is_null()) {
    return "-";
  }
  std::optional<std::int64_t> at = epochMicros(timestamp);
  std::optional<std::int64_t> reference = epochMicros(now);
  if (!at) {
    return text(timestamp);
  }
  std::time_t whole = static_cast<std::time_t>(*at >= 0 ? *at / 1000000 : (*at - 999999) / 1000000);
  std::tm tm{};
  gmtime_r(&whole, &tm);
  char exact[32];
  std::strftime(exact, sizeof exact, "%Y-%m-%d %H:%M:%S", &tm);
  std::string title =
      fmt::format("{}.{:03d} UTC", exact, static_cast<int>((*at - whole * 1000000LL) / 1000));
  std::string shown = title;
  if (reference) {
    double delta = static_cast<double>(*at - *reference) / 1e6;
    double s = std::fabs(delta);
    if (s < 1) {
      shown = "now";
    } else {
      std::string amount;
      if (s < 60) {
        amount = plural(static_cast<long long>(s), "s");
      } else if (s < 3600) {
        amount = plural(static_cast<long long>(s / 60), "min");
      } else if (s < 2 * 86400) {
        amount = plural(static_cast<long long>(s / 3600), "h");
      } else {
        amount = plural(static_cast<long long>(s / 86400), "d");
      }
      shown = delta < 0 ? amount + " ago" : "in " + amount;
    }
  }
  return "<time datetime=\"" + text(timestamp) + "\" title=\"" + title + "\">" + escapeHtml(shown) +
         "</time>";
}

std::string whenCell(const nlohmann::json& timestamp, const nlohmann::json& now) {
  return "<td>" + when(timestamp, now) + "</td>";
}

std::string page(const std::string& title, const std::string& body, const std::string& script) {
  return "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>" +
         escapeHtml(title) + " - jobd</title><style>" + kStyle +
         "</style></head><body><header><h1><a href=\"/\">jobd</a></h1><span>" + escapeHtml(title) +
         "</span><span id=\"state\" class=\"muted\"></span>"
         "<form action=\"/search\" method=\"get\" role=\"search\"><input name=\"q\" "
         "type=\"search\" placeholder=\"job id or target\" aria-label=\"job id or target\" "
         "accesskey=\"s\"></form></header><main>" +
         body + "</main>" + (script.empty() ? "" : "<script>" + script + "</script>") +
         "</body></html>";
}

}  // namespace html
}  // namespace jobd::http
