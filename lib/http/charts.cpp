#include "http/charts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "http/html.hpp"

namespace jobd::http::charts {
namespace {

constexpr double kWidth = 600;
constexpr double kHeight = 120;  // the time labels' baseline is 4 above it
constexpr double kTop = 22;      // room for the top value's label above it
constexpr double kBottom = 100;  // the zero line
constexpr double kSparkWidth = 120;
constexpr double kSparkHeight = 28;

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

// The lines of `series` in a box `width` wide, from `bottom` (zero) up to
// `top` (the round top value), each a <g> with its numbers.
struct Plot {
  std::size_t minutes = 0;
  double scale = 1;
  std::string lines;
  std::string legend;
};

Plot plot(const std::vector<Series>& series, double width, double top, double bottom) {
  Plot out;
  double most = 0;
  for (const Series& s : series) {
    out.minutes = std::max(out.minutes, s.values.size());
    for (const auto& v : s.values) {
      if (v) {
        most = std::max(most, *v);
      }
    }
  }
  // A round top: 1, 2 or 5 times a power of ten, at least 1.
  if (most > 1) {
    double magnitude = std::pow(10, std::floor(std::log10(most)));
    out.scale = most <= magnitude       ? magnitude
                : most <= 2 * magnitude ? 2 * magnitude
                : most <= 5 * magnitude ? 5 * magnitude
                                        : 10 * magnitude;
  }
  const double step = out.minutes > 1 ? width / static_cast<double>(out.minutes - 1) : width;
  for (const Series& s : series) {
    std::string values;
    std::string points;
    std::string paths;
    values.reserve(s.values.size() * 4);
    points.reserve(s.values.size() * 12);
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      if (i > 0) {
        values += ',';
      }
      if (s.values[i]) {
        values += number(*s.values[i]);
        double x = static_cast<double>(i) * step;
        double y = bottom - (*s.values[i] / out.scale) * (bottom - top);
        fmt::format_to(std::back_inserter(points), "{}{:.1f},{:.1f}", points.empty() ? "" : " ", x,
                       y);
      }
      if ((!s.values[i] || i + 1 == s.values.size()) && !points.empty()) {
        // A lone point shows as a dot: a line of no length with round caps.
        paths += "<polyline points=\"" + points +
                 (points.find(' ') == std::string::npos ? " " + points : "") + "\"/>";
        points.clear();
      }
    }
    fmt::format_to(std::back_inserter(out.lines),
                   R"(<g data-series="{}" data-values="{}" stroke="{}">{}</g>)", escapeHtml(s.name),
                   values, s.color, paths);
    fmt::format_to(std::back_inserter(out.legend),
                   R"(<span class="key"><i style="background:{}"></i>{}</span>)", s.color,
                   escapeHtml(s.name));
  }
  return out;
}

constexpr const char* kStroke =
    "<g fill=\"none\" stroke-width=\"1.5\" stroke-linejoin=\"round\" stroke-linecap=\"round\" "
    "vector-effect=\"non-scaling-stroke\">";

// Jobs completed and failed in each minute of `points` ([minute,
// completed, failed, ...]): 0 for a minute rolled up (from `since` to
// before `through`) without a row; none for one not rolled up (the last
// one or two, or from before the first roll-up).
std::pair<Series, Series> finishedSeries(const std::vector<const nlohmann::json*>& rows,
                                         std::int64_t first, std::optional<double> since,
                                         std::optional<double> through) {
  Series completed{"completed", "#15803d", {}};
  Series failed{"failed", "#b3261e", {}};
  completed.values.reserve(rows.size());
  failed.values.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto at = static_cast<double>(first + static_cast<std::int64_t>(i) * 60);
    const bool rolled = since && through && at >= *since && at < *through;
    completed.values.push_back(rolled && rows[i] != nullptr ? field(*rows[i], 1).value_or(0)
                               : rolled                     ? std::optional<double>(0)
                                                            : std::nullopt);
    failed.values.push_back(rolled && rows[i] != nullptr ? field(*rows[i], 2).value_or(0)
                            : rolled                     ? std::optional<double>(0)
                                                         : std::nullopt);
  }
  return {completed, failed};
}

// For each of `minutes` minutes from `first` (Unix seconds): its row of
// `rows` ([minute, ...]), or nullptr when it has none.
std::vector<const nlohmann::json*> everyMinute(const nlohmann::json& rows, std::int64_t first,
                                               std::int64_t minutes) {
  std::vector<const nlohmann::json*> out(
      static_cast<std::size_t>(std::max<std::int64_t>(minutes, 0)), nullptr);
  for (const auto& row : rows) {
    std::optional<double> at = field(row, 0);
    if (at) {
      auto i = static_cast<std::int64_t>(*at) - first;
      if (i >= 0 && i % 60 == 0 && i / 60 < minutes) {
        out[static_cast<std::size_t>(i / 60)] = &row;
      }
    }
  }
  return out;
}

std::optional<double> epochField(const nlohmann::json& object, const char* name) {
  return object.is_object() && object.contains(name) && object[name].is_number()
             ? std::optional(object[name].get<double>())
             : std::nullopt;
}

}  // namespace

std::string lineChart(const std::string& id, const std::string& title, std::int64_t first_minute,
                      const std::vector<Series>& series, const std::string& unit) {
  Plot p = plot(series, kWidth, kTop, kBottom);
  const std::string top_label = number(p.scale) + unit;
  return "<figure class=\"chart\" id=\"" + escapeHtml(id) + "\"><figcaption>" + escapeHtml(title) +
         " " + p.legend + "</figcaption>" +
         fmt::format(
             "<svg viewBox=\"0 0 {0} {1}\" role=\"img\" "
             "aria-label=\"{2}\" data-first-minute=\"{3}\" data-top=\"{4}\">"
             "<line x1=\"0\" y1=\"{5}\" x2=\"{0}\" y2=\"{5}\" class=\"axis\"/>"
             "<line x1=\"0\" y1=\"{6}\" x2=\"{0}\" y2=\"{6}\" class=\"grid\"/>"
             "<text x=\"2\" y=\"{7}\">{8}</text><text x=\"2\" y=\"{9}\">-{10}</text>"
             "<text x=\"{0}\" y=\"{9}\" text-anchor=\"end\">now</text>",
             kWidth, kHeight,
             escapeHtml(title + ", last " + span(p.minutes) + ", top " + top_label), first_minute,
             number(p.scale), kBottom, kTop, kTop - 5, escapeHtml(top_label), kHeight - 4,
             span(p.minutes)) +
         kStroke + p.lines + "</g></svg></figure>";
}

std::string sparkline(const nlohmann::json& last_hour, const nlohmann::json& rolled,
                      std::int64_t now_minute) {
  // The hour's minutes, the current one last, from the rows there are.
  const std::int64_t first = now_minute - std::int64_t{59} * 60;
  const std::optional<double> since = epochField(rolled, "since");
  const std::optional<double> through = epochField(rolled, "through");
  auto [completed, failed] = finishedSeries(
      everyMinute(last_hour.is_array() ? last_hour : nlohmann::json::array(), first, 60), first,
      since, through);
  double done = 0;
  double bad = 0;
  for (std::size_t i = 0; i < completed.values.size(); ++i) {
    done += completed.values[i].value_or(0);
    bad += failed.values[i].value_or(0);
  }
  Plot p = plot({completed, failed}, kSparkWidth, 2, kSparkHeight - 2);
  return fmt::format(
             "<svg class=\"spark\" viewBox=\"0 0 {0} {1}\" role=\"img\" aria-label=\"last "
             "hour: {2} completed, {3} failed; top {4} a minute\" data-first-minute=\"{5}\" "
             "data-since=\"{6}\" data-through=\"{7}\">"
             "<title>last hour: {2} completed, {3} failed; top {4} a minute</title>",
             kSparkWidth, kSparkHeight, number(done), number(bad), number(p.scale), first,
             since ? number(*since) : "", through ? number(*through) : "") +
         kStroke + p.lines + "</g></svg>";
}

std::string trendCharts(const nlohmann::json& trends) {
  const std::optional<double> first = epochField(trends, "first");
  const std::optional<double> minutes = epochField(trends, "minutes");
  if (!first || !minutes || *minutes < 1 || !trends.contains("rows") ||
      !trends["rows"].is_array()) {
    return "";
  }
  const auto from = static_cast<std::int64_t>(*first);
  const std::vector<const nlohmann::json*> rows =
      everyMinute(trends["rows"], from, static_cast<std::int64_t>(*minutes));
  auto [completed, failed] =
      finishedSeries(rows, from, epochField(trends, "since"), epochField(trends, "through"));
  Series ready{"ready", "#2563eb", {}};
  Series p50{"p50", "#2563eb", {}};
  Series p95{"p95", "#c2410c", {}};
  for (const nlohmann::json* row : rows) {
    ready.values.push_back(row != nullptr ? field(*row, 3) : std::nullopt);
    p50.values.push_back(row != nullptr ? field(*row, 4) : std::nullopt);
    p95.values.push_back(row != nullptr ? field(*row, 5) : std::nullopt);
  }
  // The minutes rolled up, for a reader that checks the charts: those from
  // data-since to before data-through (Unix seconds; none when empty).
  auto epoch = [&trends](const char* name) {
    std::optional<double> v = epochField(trends, name);
    return v ? number(*v) : std::string();
  };
  return "<div class=\"charts\" data-since=\"" + epoch("since") + "\" data-through=\"" +
         epoch("through") + "\">" +
         lineChart("chart-finished", "jobs finished per minute", from, {completed, failed}, "") +
         lineChart("chart-ready", "ready jobs", from, {ready}, "") +
         lineChart("chart-latency", "queue latency (ready to started)", from, {p50, p95}, " s") +
         "</div>";
}

}  // namespace jobd::http::charts
