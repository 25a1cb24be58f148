#include "fail_handler.hpp"

#include <sys/mman.h>

#include <csignal>
#include <new>
#include <set>

#include "core/job_errors.hpp"
#include "drills.hpp"

namespace jobd::jobtypes {
namespace {

class FailJob : public runtime::IRunnableJob {
 public:
  FailJob(std::string error, std::string message, std::size_t bytes)
      : error_(std::move(error)), message_(std::move(message)), bytes_(bytes) {}

  void run(runtime::JobContext& context) override {
    if (error_ == "crash") {
      // Dies as a segmentation fault does, whatever handler a sanitizer
      // installed: the process running the job goes with it.
      std::signal(SIGSEGV, SIG_DFL);
      std::raise(SIGSEGV);
    }
    if (error_ == "memory") {
      hog();
      return;
    }
    if (error_ == "retry") {
      throw RetryError(message_);
    }
    if (error_ == "user") {
      throw UserError(message_);
    }
    if (error_ == "suspend") {
      throw SuspendJob(message_);
    }
    context.oops_vars["requested_error"] = error_;
    throw OopsError("FailError", message_);
  }

  // Maps bytes_ of memory and touches every page, as a job that grows
  // without bound does; past memory_limit the mapping fails (std::bad_alloc,
  // an OOPS). Mapped directly so that no allocator's policy interferes.
  void hog() const {
    void* memory =
        mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      throw std::bad_alloc();
    }
    auto* bytes = static_cast<volatile char*>(memory);
    for (std::size_t offset = 0; offset < bytes_; offset += 4096) {
      bytes[offset] = 1;
    }
    munmap(memory, bytes_);
  }

  std::string error_;
  std::string message_;
  std::size_t bytes_;
};

class FailSource : public runtime::IJobSource {
 public:
  explicit FailSource(bool drills) : drills_(drills) {}

  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json& data) const override {
    auto error = data.find("error");
    static const std::set<std::string> kErrors = {"retry",   "user",  "oops",
                                                  "suspend", "crash", "memory"};
    if (error == data.end() || !error->is_string() ||
        kErrors.count(error->get<std::string>()) == 0) {
      throw UserError(
          "fail: json_data.error must be \"retry\", \"user\", \"oops\", \"suspend\", "
          "\"crash\" or \"memory\"");
    }
    if (!drills_ && (*error == "crash" || *error == "memory")) {
      throw UserError("fail: the " + error->get<std::string>() +
                      " drill is off in this section (drills: true turns it on)");
    }
    std::string message = "failed as asked";
    if (auto m = data.find("message"); m != data.end()) {
      if (!m->is_string()) {
        throw UserError("fail: json_data.message must be a string");
      }
      message = m->get<std::string>();
    }
    std::size_t bytes = 1ULL << 30;
    if (auto b = data.find("bytes"); b != data.end()) {
      if (!b->is_number_unsigned() || b->get<std::uint64_t>() > (1ULL << 40)) {
        throw UserError("fail: json_data.bytes must be a whole number of bytes up to 1T");
      }
      bytes = b->get<std::size_t>();
    }
    return std::make_unique<FailJob>(error->get<std::string>(), message, bytes);
  }

 private:
  bool drills_;
};

}  // namespace

config::HandlerDescriptor failDescriptor() {
  return {"fail",
          "ends as json_data.error says: retry, user, oops or suspend, with json_data.message; "
          "crash dies of SIGSEGV and memory maps json_data.bytes (default 1G), only with drills: "
          "true",
          {drillsKey("crash and memory")}};
}

std::unique_ptr<runtime::IJobSource> makeFailSource(const config::SectionConfig& section) {
  return std::make_unique<FailSource>(drillsAllowed(section));
}

}  // namespace jobd::jobtypes
