#include "noop_handler.hpp"

namespace jobd::jobtypes {
namespace {

class NoopJob : public runtime::IRunnableJob {
 public:
  // json_data.result, when there is one, is the job's result (schema 16).
  void run(runtime::JobContext& context) override {
    if (auto it = context.data.find("result"); it != context.data.end()) {
      context.result = *it;
    }
  }
};

class NoopSource : public runtime::IJobSource {
 public:
  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json&) const override {
    return std::make_unique<NoopJob>();
  }
};

}  // namespace

config::HandlerDescriptor noopDescriptor() {
  return {"noop",
          "does nothing and completes, with json_data.result as its result if there is one: "
          "smoke tests and benchmarks",
          {}};
}

std::unique_ptr<runtime::IJobSource> makeNoopSource(const config::SectionConfig&) {
  return std::make_unique<NoopSource>();
}

}  // namespace jobd::jobtypes
