#include "http/charts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "http/html.hpp"

namespace jobd::http::charts {
namespace {

constexpr double kWidth = 600;
constexpr double kHeight = 120;  // the time labels' baseline is 4 above it
constexpr double kTop = 22;      // room for the top value's label above it
constexpr double kBottom = 100;  // the zero line

// A value as the label and the data attribute write it: integers without
// a fraction, others to three places.
std::string number(double v) {
  if (std::fabs(v - std::round(v)) < 1e-9 && std::fabs(v) < 1e15) {
    return fmt::format("{}", static_cast<std::int64_t>(std::round(v)));
  }
  return fmt::format("{:.3f}", v);
}

// A span of minutes as people say it: "1 h", "6 h", "45 min".
std::string span(std::size_t minutes) {
  return minutes % 60 == 0 ? fmt::format("{} h", minutes / 60) : fmt::format("{} min", minutes);
}

std::optional<double> field(const nlohmann::json& point, std::size_t i) {
  if (!point.is_array() || point.size() <= i || !point[i].is_number()) {
    return std::nullopt;
  }
  return point[i].get<double>();
}

}  // namespace

std::string lineChart(const std::string& id, const std::string& title, std::int64_t first_minute,
                      const std::vector<Series>& series, const std::string& unit) {
  std::size_t n = 0;
  double top = 0;
  for (const Series& s : series) {
    n = std::max(n, s.values.size());
    for (const auto& v : s.values) {
      if (v) {
        top = std::max(top, *v);
      }
    }
  }
  // A round top: 1, 2 or 5 times a power of ten, at least 1.
  double scale = 1;
  if (top > 1) {
    double magnitude = std::pow(10, std::floor(std::log10(top)));
    scale = top <= magnitude       ? magnitude
            : top <= 2 * magnitude ? 2 * magnitude
            : top <= 5 * magnitude ? 5 * magnitude
                                   : 10 * magnitude;
  }
  const double step = n > 1 ? kWidth / static_cast<double>(n - 1) : kWidth;
  std::string legend;
  std::string lines;
  for (const Series& s : series) {
    std::string values;
    std::string points;
    std::string paths;
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      values += (i == 0 ? "" : ",") + (s.values[i] ? number(*s.values[i]) : std::string());
      if (s.values[i]) {
        double x = static_cast<double>(i) * step;
        double y = kBottom - (*s.values[i] / scale) * (kBottom - kTop);
        points += fmt::format("{}{:.1f},{:.1f}", points.empty() ? "" : " ", x, y);
      }
      if ((!s.values[i] || i + 1 == s.values.size()) && !points.empty()) {
        // A lone point shows as a dot: a line of no length with round caps.
        paths += "<polyline points=\"" + points +
                 (points.find(' ') == std::string::npos ? " " + points : "") + "\"/>";
        points.clear();
      }
    }
    lines += "<g data-series=\"" + escapeHtml(s.name) + "\" data-values=\"" + values +
             "\" stroke=\"" + s.color + "\">" + paths + "</g>";
    legend += "<span class=\"key\"><i style=\"background:" + s.color + "\"></i>" +
              escapeHtml(s.name) + "</span>";
  }
  const std::string top_label = number(scale) + unit;
  return "<figure class=\"chart\" id=\"" + escapeHtml(id) + "\"><figcaption>" + escapeHtml(title) +
         " " + legend + "</figcaption>" +
         fmt::format(
             "<svg viewBox=\"0 0 {0} {1}\" role=\"img\" "
             "aria-label=\"{2}\" data-first-minute=\"{3}\" data-top=\"{4}\">"
             "<line x1=\"0\" y1=\"{5}\" x2=\"{0}\" y2=\"{5}\" class=\"axis\"/>"
             "<line x1=\"0\" y1=\"{6}\" x2=\"{0}\" y2=\"{6}\" class=\"grid\"/>"
             "<text x=\"2\" y=\"{7}\">{8}</text><text x=\"2\" y=\"{9}\">-{10}</text>"
             "<text x=\"{0}\" y=\"{9}\" text-anchor=\"end\">now</text>",
             kWidth, kHeight, escapeHtml(title + ", last " + span(n) + ", top " + top_label),
             first_minute, number(scale), kBottom, kTop, kTop - 5, escapeHtml(top_label),
             kHeight - 4, span(n)) +
         "<g fill=\"none\" stroke-width=\"1.5\" stroke-linejoin=\"round\" "
         "stroke-linecap=\"round\" vector-effect=\"non-scaling-stroke\">" +
         lines + "</g></svg></figure>";
}

std::string trendCharts(const nlohmann::json& trends) {
  if (!trends.is_object() || !trends.contains("points") || !trends["points"].is_array() ||
      trends["points"].empty()) {
    return "";
  }
  const nlohmann::json& points = trends["points"];
  auto minute = [&trends](const char* name) {
    return trends.contains(name) && trends[name].is_number()
               ? std::optional(trends[name].get<double>())
               : std::nullopt;
  };
  const std::optional<double> since = minute("since");
  const std::optional<double> through = minute("through");
  Series completed{"completed", "#15803d", {}};
  Series failed{"failed", "#b3261e", {}};
  Series ready{"ready", "#2563eb", {}};
  Series p50{"p50", "#2563eb", {}};
  Series p95{"p95", "#c2410c", {}};
  for (const auto& p : points) {
    // A minute rolled up with no finished job is a 0; one not rolled up
    // (the last one or two, or from before the first roll-up) has no count.
    const std::optional<double> at = field(p, 0);
    const bool rolled = since && through && at && *at >= *since && *at < *through;
    completed.values.push_back(rolled ? field(p, 1).value_or(0) : std::optional<double>());
    failed.values.push_back(rolled ? field(p, 2).value_or(0) : std::optional<double>());
    ready.values.push_back(field(p, 3));
    p50.values.push_back(field(p, 4));
    p95.values.push_back(field(p, 5));
  }
  const std::int64_t first =
      field(points[0], 0) ? static_cast<std::int64_t>(*field(points[0], 0)) : 0;
  return "<div class=\"charts\">" +
         lineChart("chart-finished", "jobs finished per minute", first, {completed, failed}, "") +
         lineChart("chart-ready", "ready jobs", first, {ready}, "") +
         lineChart("chart-latency", "queue latency (ready to started)", first, {p50, p95}, " s") +
         "</div>";
}

}  // namespace jobd::http::charts
