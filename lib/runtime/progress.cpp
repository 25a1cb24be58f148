#include "runtime/progress.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/job_errors.hpp"
#include "core/text.hpp"

namespace jobd::runtime {

bool jsonHasNul(const nlohmann::json& value) {
  if (value.is_string()) {
    return value.get_ref<const std::string&>().find('\0') != std::string::npos;
  }
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      if (key.find('\0') != std::string::npos || jsonHasNul(item)) {
        return true;
      }
    }
  }
  if (value.is_array()) {
    for (const auto& item : value) {
      if (jsonHasNul(item)) {
        return true;
      }
    }
  }
  return false;
}

nlohmann::json parseReportJson(std::string_view text) {
  bool too_deep = false;
  nlohmann::json::parser_callback_t bound = [&too_deep](int depth, nlohmann::json::parse_event_t,
                                                        nlohmann::json&) {
    too_deep = too_deep || depth > kMaxReportDepth;
    return !too_deep;
  };
  nlohmann::json parsed = nlohmann::json::parse(text, bound, false);
  if (too_deep) {
    throw std::invalid_argument("nested deeper than " + std::to_string(kMaxReportDepth) +
                                " levels");
  }
  if (parsed.is_discarded()) {
    throw std::invalid_argument("not JSON");
  }
  return parsed;
}

namespace {

// The first `limit` characters of UTF-8 text.
std::string firstCharacters(const std::string& text, std::size_t limit) {
  std::size_t characters = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80 && characters++ == limit) {
      return text.substr(0, i);
    }
  }
  return text;
}

}  // namespace

std::optional<ReportRefused> checkReport(ProgressUpdate& update, std::size_t max_checkpoint) {
  if (update.percent) {
    if (!std::isfinite(*update.percent)) {
      return ReportRefused{"ProgressNotANumber", "the percentage is not a finite number"};
    }
    update.percent = std::clamp(*update.percent, 0.0, 100.0);
  }
  if (update.message) {
    update.message = firstCharacters(storableText(*update.message), kMaxProgressMessage);
  }
  if (update.checkpoint) {
    nlohmann::json parsed;
    try {
      parsed = parseReportJson(*update.checkpoint);
    } catch (const std::invalid_argument& e) {
      return ReportRefused{"CheckpointNotJson", std::string("the checkpoint is ") + e.what()};
    }
    if (jsonHasNul(parsed)) {
      return ReportRefused{"CheckpointNotStorable",
                           "the checkpoint has a string with \\u0000 in it, which jsonb refuses"};
    }
    update.checkpoint = parsed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (update.checkpoint->size() > max_checkpoint) {
      return ReportRefused{"CheckpointTooLarge", "the checkpoint is " +
                                                     std::to_string(update.checkpoint->size()) +
                                                     " bytes, over max_payload (" +
                                                     std::to_string(max_checkpoint) + " bytes)"};
    }
  }
  return std::nullopt;
}

ProgressUpdate progressFromJson(const nlohmann::json& j) {
  if (!j.is_object()) {
    throw std::invalid_argument("a report is a JSON object");
  }
  ProgressUpdate update;
  for (const auto& [key, value] : j.items()) {
    if (value.is_null()) {
      continue;  // not reported
    }
    if (key == "percent") {
      if (!value.is_number()) {
        throw std::invalid_argument("percent must be a number");
      }
      update.percent = value.get<double>();
    } else if (key == "message") {
      if (!value.is_string()) {
        throw std::invalid_argument("message must be a string");
      }
      update.message = value.get<std::string>();
    } else if (key == "checkpoint") {
      update.checkpoint = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else if (key != "job_id") {
      throw std::invalid_argument("unknown key '" + key +
                                  "' (a report has percent, message and checkpoint)");
    }
  }
  return update;
}

nlohmann::json progressToJson(const ProgressUpdate& update) {
  nlohmann::json j = nlohmann::json::object();
  if (update.percent) {
    j["percent"] = *update.percent;
  }
  if (update.message) {
    j["message"] = *update.message;
  }
  if (update.checkpoint) {
    j["checkpoint"] = nlohmann::json::parse(*update.checkpoint);
  }
  return j;
}

void JobContext::report(ProgressUpdate update) {
  if (auto refused = checkReport(update, job.max_result)) {
    throw OopsError(refused->type, refused->reason);
  }
  if (progress_sink) {
    progress_sink(std::move(update));
  }
}

void JobContext::reportProgress(double percent, std::string message) {
  ProgressUpdate update;
  update.percent = percent;
  if (!message.empty()) {
    update.message = std::move(message);
  }
  report(std::move(update));
}

void JobContext::saveCheckpoint(const nlohmann::json& checkpoint) {
  ProgressUpdate update;
  update.checkpoint = checkpoint.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  report(std::move(update));
}

std::optional<nlohmann::json> JobContext::checkpoint() const {
  if (!job.checkpoint) {
    return std::nullopt;
  }
  auto parsed = nlohmann::json::parse(*job.checkpoint, nullptr, false);
  if (parsed.is_discarded()) {
    return std::nullopt;
  }
  return parsed;
}

ProgressThrottle::ProgressThrottle(Flush flush, std::chrono::milliseconds interval)
    : flush_(std::move(flush)), interval_(interval) {}

ProgressThrottle::~ProgressThrottle() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void ProgressThrottle::report(AttemptKey key, std::string_view job_type, ProgressUpdate update) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!thread_.joinable()) {
      thread_ = std::thread([this] { run(); });
    }
    Entry& entry = entries_[key];
    if (entry.latest.job_type.empty()) {
      entry.latest.job_type = job_type;
    }
    if (update.percent) {
      entry.latest.percent = update.percent;
    }
    if (update.message) {
      entry.latest.message = update.message;
    }
    entry.pending.mergeLater(std::move(update));
    if (entry.dirty) {
      return;  // a flush is due already
    }
    entry.dirty = true;
    auto now = std::chrono::steady_clock::now();
    entry.due = entry.flushed ? std::max(now, *entry.flushed + interval_) : now;
  }
  wake_.notify_one();
}

std::optional<ProgressUpdate> ProgressThrottle::take(AttemptKey key, bool forget) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    return std::nullopt;
  }
  std::optional<ProgressUpdate> left;
  if (it->second.dirty) {
    left = std::move(it->second.pending);
    it->second.pending = {};
    it->second.dirty = false;
    it->second.flushed = std::chrono::steady_clock::now();
  }
  if (forget) {
    entries_.erase(it);
  }
  return left;
}

std::map<AttemptKey, ProgressThrottle::Latest> ProgressThrottle::latest() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<AttemptKey, Latest> out;
  for (const auto& [key, entry] : entries_) {
    out.emplace(key, entry.latest);
  }
  return out;
}

void ProgressThrottle::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> next;
    std::vector<ProgressReport> due;
    for (auto& [key, entry] : entries_) {
      if (!entry.dirty) {
        continue;
      }
      if (entry.due <= now) {
        due.push_back({key, std::move(entry.pending)});
        entry.pending = {};
        entry.dirty = false;
        entry.flushed = now;
      } else if (!next || entry.due < *next) {
        next = entry.due;
      }
    }
    if (!due.empty()) {
      flush_(std::move(due));  // under the lock: take() waits for it
      continue;
    }
    if (next) {
      wake_.wait_until(lock, *next);
    } else {
      wake_.wait(lock);
    }
  }
}

}  // namespace jobd::runtime
