#include "noop_handler.hpp"

namespace jobd::jobtypes {
namespace {

class NoopJob : public runtime::IRunnableJob {
 public:
  void run(runtime::JobContext&) override {}
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
  return {"noop", "does nothing and completes: smoke tests and benchmarks", {}};
}

std::unique_ptr<runtime::IJobSource> makeNoopSource(const config::SectionConfig&) {
  return std::make_unique<NoopSource>();
}

}  // namespace jobd::jobtypes
