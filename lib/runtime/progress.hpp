// Progress and checkpoints (schema 18): what a running job reports, and the
// throttle that turns any number of reports into at most one write of the
// job's jobd.job_progress row a second.
//
// A handler reports through its JobContext (C++), the descriptor named by
// JOBD_PROGRESS_FD (exec) or jobd.report_progress (sql); each report is
// checked here (checkReport) where the job runs. A ProgressThrottle keeps,
// per attempt, what has been reported and not yet written, and hands it to
// its flush function at most once per interval per attempt, on a thread of
// its own (started at the first report: a daemon whose jobs never report
// has no such thread). In the daemon the flush goes to the OutcomeRecorder,
// whose database thread writes it before any outcome recorded later; in a
// process runner it goes to the daemon as a frame. When a job returns,
// take() gives back what is left, so that it is written before the outcome.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/job_source.hpp"

namespace jobd::runtime {

// The longest progress message kept, in characters (jobd.job_progress).
constexpr std::size_t kMaxProgressMessage = 200;

// Whether a JSON value has a string (or key) with U+0000, which jsonb refuses.
bool jsonHasNul(const nlohmann::json& value);

// Checks and normalises a report: percent must be a finite number, and is
// clamped to 0..100; the message is made storable and cut to
// kMaxProgressMessage characters; the checkpoint must be JSON, without
// U+0000, of at most max_checkpoint bytes (max_payload), and is kept in its
// compact form. Returns why it is refused (an error type: ProgressNotANumber,
// CheckpointNotJson, CheckpointNotStorable, CheckpointTooLarge), or nullopt.
struct ReportRefused {
  std::string type;
  std::string reason;
};
std::optional<ReportRefused> checkReport(ProgressUpdate& update, std::size_t max_checkpoint);

// JSON text parsed with at most kMaxReportDepth levels of nesting: a
// report's recursive checks and printing must not run out of stack on
// `[[[[...`. Throws std::invalid_argument.
constexpr int kMaxReportDepth = 64;
nlohmann::json parseReportJson(std::string_view text);

// A report as one JSON object ({"percent", "message", "checkpoint"}, each
// optional): an exec program's line, a sql job's notice, a runner's frame.
// Throws std::invalid_argument for anything else.
ProgressUpdate progressFromJson(const nlohmann::json& j);
nlohmann::json progressToJson(const ProgressUpdate& update);

class ProgressThrottle {
 public:
  using Flush = std::function<void(std::vector<ProgressReport>)>;
  // What the latest report of a running job said (metrics, the dashboard).
  struct Latest {
    std::string job_type;
    std::optional<double> percent;
    std::optional<std::string> message;
  };

  // flush runs on the throttle's thread, under its lock (so that take()
  // never overtakes a flush in progress): it must not call back into the
  // throttle, and should not block for long.
  explicit ProgressThrottle(Flush flush,
                            std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~ProgressThrottle();
  ProgressThrottle(const ProgressThrottle&) = delete;
  ProgressThrottle& operator=(const ProgressThrottle&) = delete;

  // Any thread. A later report replaces what an earlier one said (a
  // checkpoint only by a later checkpoint). The first of an attempt's
  // reports is flushed at once, later ones an interval after the last flush.
  void report(AttemptKey key, std::string_view job_type, ProgressUpdate update);
  // What the attempt reported and was not flushed yet. forget: the attempt
  // is over, its entry goes (else it stays, for a job released while it
  // still runs). Any thread.
  std::optional<ProgressUpdate> take(AttemptKey key, bool forget = true);
  std::map<AttemptKey, Latest> latest() const;

 private:
  struct Entry {
    Latest latest;
    ProgressUpdate pending;
    bool dirty = false;
    std::chrono::steady_clock::time_point due;
    std::optional<std::chrono::steady_clock::time_point> flushed;  // last flush
  };
  void run();

  Flush flush_;
  std::chrono::milliseconds interval_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<AttemptKey, Entry> entries_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace jobd::runtime
