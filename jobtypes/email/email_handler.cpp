#include "email_handler.hpp"

#include <unistd.h>

#include "core/host.hpp"
#include "core/job_errors.hpp"
#include "mail/mailer.hpp"

namespace jobd::jobtypes {
namespace {

std::vector<std::string> addresses(const nlohmann::json& data, const char* field, bool required) {
  std::vector<std::string> out;
  auto it = data.find(field);
  if (it == data.end()) {
    if (required) {
      throw UserError(std::string("email: json_data.") + field + " is required");
    }
    return out;
  }
  auto add = [&](const nlohmann::json& value) {
    if (!value.is_string() || !mail::Mailer::validAddress(value.get<std::string>())) {
      throw UserError(std::string("email: json_data.") + field +
                      " has a bad address: " + value.dump());
    }
    out.push_back(value.get<std::string>());
  };
  if (it->is_array()) {
    for (const nlohmann::json& value : *it) {
      add(value);
    }
  } else {
    add(*it);
  }
  if (required && out.empty()) {
    throw UserError(std::string("email: json_data.") + field + " names no address");
  }
  return out;
}

std::string text(const nlohmann::json& data, const char* field, bool header) {
  auto it = data.find(field);
  if (it == data.end() || !it->is_string()) {
    throw UserError(std::string("email: json_data.") + field + " must be a string");
  }
  std::string value = it->get<std::string>();
  if (header && !mail::Mailer::validHeaderText(value)) {
    throw UserError(std::string("email: json_data.") + field + " must be one line");
  }
  return value;
}

class EmailJob : public runtime::IRunnableJob {
 public:
  EmailJob(const mail::Mailer& mailer, mail::MailMessage message)
      : mailer_(mailer), message_(std::move(message)) {}

  void run(runtime::JobContext& context) override {
    context.oops_vars["message_id"] = message_.message_id;
    mail::SendResult sent = mailer_.send(message_);
    std::string what = sent.describe();
    switch (sent.kind) {
      case mail::SendResult::Kind::kSent:
        return;
      case mail::SendResult::Kind::kTemporary:
        throw RetryError(what, "SmtpTemporaryError");
      case mail::SendResult::Kind::kPermanent:
        throw UserError(what, "SmtpRejected");
    }
  }

 private:
  const mail::Mailer& mailer_;
  mail::MailMessage message_;
};

class EmailSource : public runtime::IJobSource {
 public:
  explicit EmailSource(const config::MailSettings& mail) : mailer_(mail), host_(hostName()) {}

  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob& job,
                                                      const nlohmann::json& data) const override {
    if (!data.is_object()) {
      throw UserError("email: json_data must be an object");
    }
    mail::MailMessage message;
    message.from = mailer_.fromAddress();
    message.to = addresses(data, "to", true);
    message.cc = addresses(data, "cc", false);
    message.subject = text(data, "subject", true);
    message.body = text(data, "body", false);
    if (auto headers = data.find("headers"); headers != data.end()) {
      if (!headers->is_object()) {
        throw UserError("email: json_data.headers must be an object of strings");
      }
      for (const auto& [name, value] : headers->items()) {
        bool name_ok = !name.empty() && name.find_first_of(": \t\r\n") == std::string::npos;
        if (!name_ok || !value.is_string() ||
            !mail::Mailer::validHeaderText(value.get<std::string>())) {
          throw UserError("email: json_data.headers[" + nlohmann::json(name).dump() +
                          "] must be a one-line string under a plain header name");
        }
        message.headers.emplace_back(name, value.get<std::string>());
      }
    }
    // The same id on every attempt: a retry resends this message.
    message.message_id = "jobd.email." + std::to_string(job.id) + "@" + host_;
    return std::make_unique<EmailJob>(mailer_, std::move(message));
  }

  std::string operationDescription(const runtime::ClaimedJob& job) const override {
    return "sending email (job " + std::to_string(job.id) + ")";
  }

 private:
  mail::Mailer mailer_;
  std::string host_;
};

}  // namespace

config::HandlerDescriptor emailDescriptor() {
  return {"email", "sends json_data {to, cc, subject, body, headers} through [mail] smtp_url", {}};
}

std::unique_ptr<runtime::IJobSource> makeEmailSource(const config::SectionConfig&,
                                                     const config::MailSettings& mail) {
  return std::make_unique<EmailSource>(mail);
}

}  // namespace jobd::jobtypes
