#include "fail_handler.hpp"

#include "core/job_errors.hpp"

namespace jobd::jobtypes {
namespace {

class FailJob : public runtime::IRunnableJob {
 public:
  FailJob(std::string error, std::string message)
      : error_(std::move(error)), message_(std::move(message)) {}

  void run(runtime::JobContext& context) override {
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

 private:
  std::string error_;
  std::string message_;
};

class FailSource : public runtime::IJobSource {
 public:
  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json& data) const override {
    auto error = data.find("error");
    if (error == data.end() || !error->is_string() ||
        (*error != "retry" && *error != "user" && *error != "oops" && *error != "suspend")) {
      throw UserError("fail: json_data.error must be \"retry\", \"user\", \"oops\" or \"suspend\"");
    }
    std::string message = "failed as asked";
    if (auto m = data.find("message"); m != data.end()) {
      if (!m->is_string()) {
        throw UserError("fail: json_data.message must be a string");
      }
      message = m->get<std::string>();
    }
    return std::make_unique<FailJob>(error->get<std::string>(), message);
  }
};

}  // namespace

config::HandlerDescriptor failDescriptor() {
  return {"fail",
          "ends as json_data.error says: retry, user, oops or suspend, with json_data.message",
          {}};
}

std::unique_ptr<runtime::IJobSource> makeFailSource(const config::SectionConfig&) {
  return std::make_unique<FailSource>();
}

}  // namespace jobd::jobtypes
