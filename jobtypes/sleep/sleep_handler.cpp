#include "sleep_handler.hpp"

#include <thread>

#include "core/job_errors.hpp"
#include "drills.hpp"

namespace jobd::jobtypes {
namespace {

class SleepJob : public runtime::IRunnableJob {
 public:
  SleepJob(std::chrono::milliseconds duration, bool ignore_cancel)
      : duration_(duration), ignore_cancel_(ignore_cancel) {}

  // Sleeps in short steps so that a cancelled job stops promptly, unless
  // asked to ignore cancellation (a stuck job, for tests and drills).
  void run(runtime::JobContext& context) override {
    auto deadline = std::chrono::steady_clock::now() + duration_;
    while (ignore_cancel_ || !context.cancellation.cancelled()) {
      auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) {
        return;
      }
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(20)));
    }
    throw RetryError("sleep was cancelled", "Cancelled");
  }

 private:
  std::chrono::milliseconds duration_;
  bool ignore_cancel_;
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
    return std::make_unique<SleepJob>(std::chrono::milliseconds(ms->get<std::int64_t>()),
                                      ignore_cancel);
  }

 private:
  bool drills_;
};

}  // namespace

config::HandlerDescriptor sleepDescriptor() {
  return {"sleep",
          "sleeps for json_data.ms milliseconds, then completes; json_data.ignore_cancel: true "
          "makes it ignore a timeout, as a stuck job does (only with drills: true)",
          {drillsKey("ignore_cancel")}};
}

std::unique_ptr<runtime::IJobSource> makeSleepSource(const config::SectionConfig& section) {
  return std::make_unique<SleepSource>(drillsAllowed(section));
}

}  // namespace jobd::jobtypes
