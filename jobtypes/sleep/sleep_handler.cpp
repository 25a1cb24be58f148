#include "sleep_handler.hpp"

#include <thread>

#include "core/job_errors.hpp"
#include "drills.hpp"

namespace jobd::jobtypes {
namespace {

// How a sleep reports (json_data.progress).
enum class Reports {
  kNone,
  kSteps,  // "steps": progress and a checkpoint at every 20 ms step
  kSpin,   // "spin": as fast as it can instead of sleeping (a drill)
};

class SleepJob : public runtime::IRunnableJob {
 public:
  SleepJob(std::chrono::milliseconds duration, bool ignore_cancel, Reports reports)
      : duration_(duration), ignore_cancel_(ignore_cancel), reports_(reports) {}

  // Sleeps in short steps so that a cancelled job stops promptly, unless
  // asked to ignore cancellation (a stuck job, for tests and drills). A
  // sleep that reports progress saves how long it has slept as its
  // checkpoint, and its next attempt sleeps only what is left; its result
  // says where it started from and how many reports it made.
  void run(runtime::JobContext& context) override {
    std::chrono::milliseconds slept{0};
    if (auto checkpoint = context.checkpoint(); checkpoint && reports_ != Reports::kNone) {
      slept = std::chrono::milliseconds(checkpoint->value("slept_ms", std::int64_t{0}));
    }
    const std::chrono::milliseconds resumed_from = slept;
    auto start = std::chrono::steady_clock::now() - slept;
    auto deadline = start + duration_;
    std::uint64_t reports = 0;
    while (ignore_cancel_ || !context.cancellation.cancelled()) {
      auto now = std::chrono::steady_clock::now();
      auto left = deadline - now;
      if (reports_ != Reports::kNone) {
        slept =
            std::min(duration_, std::chrono::duration_cast<std::chrono::milliseconds>(now - start));
        double percent = duration_.count() == 0 ? 100.0
                                                : 100.0 * static_cast<double>(slept.count()) /
                                                      static_cast<double>(duration_.count());
        context.report({percent,
                        "slept " + std::to_string(slept.count()) + " of " +
                            std::to_string(duration_.count()) + " ms",
                        "{\"slept_ms\":" + std::to_string(slept.count()) + "}"});
        ++reports;
      }
      if (left <= std::chrono::steady_clock::duration::zero()) {
        if (reports_ != Reports::kNone) {
          context.result = {{"resumed_from_ms", resumed_from.count()}, {"reports", reports}};
        }
        return;
      }
      if (reports_ != Reports::kSpin) {
        std::this_thread::sleep_for(
            std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(20)));
      }
    }
    throw RetryError("sleep was cancelled", "Cancelled");
  }

 private:
  std::chrono::milliseconds duration_;
  bool ignore_cancel_;
  Reports reports_;
};

class SleepSource : public runtime::IJobSource {
 public:
  explicit SleepSource(bool drills) : drills_(drills) {}

  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json& data) const override {
    auto ms = data.find("ms");
    if (ms == data.end() || !ms->is_number_integer() || ms->get<std::int64_t>() < 0 ||
        ms->get<std::int64_t>() > 7LL * 24 * 3600 * 1000) {
      throw UserError(
          "sleep: json_data.ms must be a whole number of milliseconds from 0 to 7 days");
    }
    bool ignore_cancel = false;
    if (auto ignore = data.find("ignore_cancel"); ignore != data.end()) {
      if (!ignore->is_boolean()) {
        throw UserError("sleep: json_data.ignore_cancel must be true or false");
      }
      ignore_cancel = ignore->get<bool>();
      if (ignore_cancel && !drills_) {
        throw UserError(
            "sleep: the ignore_cancel drill is off in this section (drills: true "
            "turns it on)");
      }
    }
    Reports reports = Reports::kNone;
    if (auto progress = data.find("progress"); progress != data.end()) {
      if (*progress == "steps") {
        reports = Reports::kSteps;
      } else if (*progress == "spin") {
        if (!drills_) {
          throw UserError(
              "sleep: the progress spin drill is off in this section (drills: true turns it on)");
        }
        reports = Reports::kSpin;
      } else if (*progress != "none") {
        throw UserError("sleep: json_data.progress must be none, steps or spin");
      }
    }
    return std::make_unique<SleepJob>(std::chrono::milliseconds(ms->get<std::int64_t>()),
                                      ignore_cancel, reports);
  }

 private:
  bool drills_;
};

}  // namespace

config::HandlerDescriptor sleepDescriptor() {
  return {"sleep",
          "sleeps for json_data.ms milliseconds, then completes; json_data.ignore_cancel: true "
          "makes it ignore a timeout, as a stuck job does (only with drills: true); "
          "json_data.progress: steps reports progress and a checkpoint every 20 ms and resumes "
          "from its checkpoint, spin reports as fast as it can (only with drills: true)",
          {drillsKey("ignore_cancel")}};
}

std::unique_ptr<runtime::IJobSource> makeSleepSource(const config::SectionConfig& section) {
  return std::make_unique<SleepSource>(drillsAllowed(section));
}

}  // namespace jobd::jobtypes
