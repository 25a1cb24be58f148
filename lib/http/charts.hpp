// The dashboard's trend charts (issue 22): small SVG line charts drawn on
// the server, inline in the page, with no script and no external asset.
// Each chart keeps the numbers it draws in data attributes, so that a test
// (or a script) reads exactly what is plotted. Pure functions, any thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace jobd::http::charts {

// One line: a value per minute, nullopt where there is none (the line
// breaks there).
struct Series {
  std::string name;   // its data-series and legend text
  std::string color;  // a CSS color
  std::vector<std::optional<double>> values;
};

// A chart of `series` over consecutive minutes from `first_minute` (Unix
// seconds), `unit` after the top value ("", " s"). Fixed aspect ratio,
// 100% wide: it takes the same room before and after a refresh.
std::string lineChart(const std::string& id, const std::string& title, std::int64_t first_minute,
                      const std::vector<Series>& series, const std::string& unit);

// The type page's charts from store::loadJobType's "trends": jobs
// completed and failed per minute, ready jobs, queue latency p50 and p95.
std::string trendCharts(const nlohmann::json& trends);

// The front page's glance at a type: jobs completed and failed per minute
// over the last hour, as a small line with no labels (its title says the
// totals). `last_hour`: job_minute rows [minute, completed, failed] of the
// hour, oldest first; `rolled`: {"since", "through"} of job_minute_rolled
// (null: none); `now_minute`: the current minute, Unix seconds.
std::string sparkline(const nlohmann::json& last_hour, const nlohmann::json& rolled,
                      std::int64_t now_minute);

}  // namespace jobd::http::charts
