// The dashboard's HTML pieces that every page shares: escaping, links,
// the page frame, and times as people read them (SPEC §9). Pure
// functions, any thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace jobd::http {

// &, <, >, " and ' as entities.
std::string escapeHtml(const std::string& text);
// For a query string's value: everything but unreserved characters as %XX.
std::string urlEncode(const std::string& text);
// The value of `name` in a query string ("a=1&b=x%20y"), decoded ('+' is a
// space); nullopt when it is not there.
std::optional<std::string> queryParam(const std::string& query, const std::string& name);

namespace html {

// A JSON value as text ("-" for null), escaped; in a <td>.
std::string text(const nlohmann::json& value);
std::string cell(const nlohmann::json& value);
// 1234567 as 1,234,567.
std::string grouped(std::int64_t n);
std::string jobLink(const nlohmann::json& id);
std::string oopsLink(const nlohmann::json& id);
std::string typeLink(const nlohmann::json& job_type);

// A timestamp as PostgreSQL's to_jsonb writes it
// ("2026-12-04T22:15:12.373325+00:00") in microseconds since the epoch;
// nullopt for anything else (null, "infinity").
std::optional<std::int64_t> epochMicros(const nlohmann::json& timestamp);
// Seconds as people say them: "850 ms", "12.3 s", "4 min 5 s",
// "3 h 12 min", "2 d 4 h".
std::string duration(double seconds);
// `timestamp` relative to `now` ("3 min ago", "in 2 h", "now"), in a
// <time> element whose title is the exact UTC time, so that hovering (or
// focusing) shows it. "-" for null; the text as it is when it is not a
// timestamp.
std::string when(const nlohmann::json& timestamp, const nlohmann::json& now);
// The same in a <td>.
std::string whenCell(const nlohmann::json& timestamp, const nlohmann::json& now);

// The whole document: header (with the search box), `body`, and the
// script when there is one.
std::string page(const std::string& title, const std::string& body, const std::string& script = "");

}  // namespace html
}  // namespace jobd::http
