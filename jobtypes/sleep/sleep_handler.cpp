#include "sleep_handler.hpp"

#include <thread>

#include "core/job_errors.hpp"

namespace jobd::jobtypes {
namespace {

class SleepJob : public runtime::IRunnableJob {
 public:
  explicit SleepJob(std::chrono::milliseconds duration) : duration_(duration) {}

  // Sleeps in short steps so that a cancelled job stops promptly.
  void run(runtime::JobContext& context) override {
    auto deadline = std::chrono::steady_clock::now() + duration_;
    while (!context.cancellation.cancelled()) {
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
};

class SleepSource : public runtime::IJobSource {
 public:
  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json& data) const override {
    auto ms = data.find("ms");
    if (ms == data.end() || !ms->is_number_integer() || ms->get<std::int64_t>() < 0 ||
        ms->get<std::int64_t>() > 7LL * 24 * 3600 * 1000) {
      throw UserError(
          "sleep: json_data.ms must be a whole number of milliseconds from 0 to 7 days");
    }
    return std::make_unique<SleepJob>(std::chrono::milliseconds(ms->get<std::int64_t>()));
  }
};

}  // namespace

config::HandlerDescriptor sleepDescriptor() {
  return {"sleep", "sleeps for json_data.ms milliseconds, then completes", {}};
}

std::unique_ptr<runtime::IJobSource> makeSleepSource(const config::SectionConfig&) {
  return std::make_unique<SleepSource>();
}

}  // namespace jobd::jobtypes
