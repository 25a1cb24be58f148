#include "runtime/notice_sender.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "mail/mailer.hpp"
#include "runtime/oops_file.hpp"

namespace jobd::runtime {

NoticeSender::NoticeSender(DatabaseThread& db, std::string hostname)
    : db_(db),
      hostname_(std::move(hostname)),
      work_(boost::asio::make_work_guard(io_)),
      thread_([this] { io_.run(); }) {}

NoticeSender::~NoticeSender() {
  stop();
}

void NoticeSender::stop() {
  work_.reset();
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::vector<std::string> NoticeSender::recipients(const Notice& notice) {
  std::vector<std::string> to;
  auto add = [&](const std::string& address) {
    if (!mail::Mailer::validAddress(address)) {
      spdlog::warn("NOTICE_BAD_ADDRESS job={}: skipping {}", notice.outcome.job.id,
                   nlohmann::json(address).dump());
    } else if (std::find(to.begin(), to.end(), address) == to.end()) {
      to.push_back(address);
    }
  };
  try {
    nlohmann::json data = nlohmann::json::parse(notice.outcome.job.json_data.value_or("{}"));
    if (auto notify = data.find("notify"); data.is_object() && notify != data.end()) {
      for (const nlohmann::json& address : notify->is_array() ? *notify : nlohmann::json{*notify}) {
        if (address.is_string()) {
          add(address.get<std::string>());
        }
      }
    }
  } catch (const nlohmann::json::exception&) {
    // A payload that is not JSON names nobody.
  }
  if (notice.oops_id) {
    if (const config::SectionConfig* section = notice.config->section(notice.outcome.job.section)) {
      for (const std::string& address : section->error_recipients) {
        add(address);
      }
    }
  }
  return to;
}

std::string NoticeSender::subject(const Notice& notice) {
  const std::string& product = notice.config->mail().product_name;
  if (notice.oops_id) {
    return product + " internal error";
  }
  return product + " error while " + notice.outcome.operation;
}

std::string NoticeSender::body(const Notice& notice) {
  const std::string& product = notice.config->mail().product_name;
  if (notice.oops_id) {
    return product + " encountered an internal error during the following operation: " +
           notice.outcome.operation + ".  It was logged with id " + *notice.oops_id +
           ".  Sorry for the inconvenience.\n";
  }
  return product +
         " encountered an error during the following operation: " + notice.outcome.operation +
         ".  " + notice.outcome.message + "\n";
}

void NoticeSender::send(Notice notice) {
  std::vector<std::string> to = recipients(notice);
  if (to.empty()) {
    return;
  }
  boost::asio::post(
      io_, [this, notice = std::move(notice), to = std::move(to)] { deliver(notice, to); });
}

void NoticeSender::deliver(const Notice& notice, const std::vector<std::string>& to) {
  const JobOutcome& o = notice.outcome;
  mail::Mailer mailer(notice.config->mail());
  mail::MailMessage message;
  message.from = mailer.fromAddress();
  message.to = to;
  message.subject = subject(notice);
  message.body = body(notice);
  message.message_id = "jobd.notice." + std::to_string(o.job.id) + "." +
                       std::to_string(o.job.attempt) + "@" + hostname_;
  mail::SendResult sent = mailer.send(message);
  if (sent.kind == mail::SendResult::Kind::kSent) {
    spdlog::info("NOTICE_SENT job={} kind={} to={}", o.job.id,
                 notice.oops_id ? "oops" : "user_error", to.size());
    return;
  }
  std::string why = sent.describe();
  OopsReport oops =
      newOopsReport(rng_, notice.config->daemon().oops_prefix,
                    {o.job.id, o.job.job_type, o.job.attempt, o.job.section}, hostname_);
  oops.type = "NoticeError";
  oops.value = "could not send the " + std::string(notice.oops_id ? "OOPS" : "user error") +
               " notice: " + why;
  oops.vars["notice_for"] = notice.oops_id.value_or("user error");
  spdlog::error("NOTICE_FAILED job={} {}: {}", o.job.id, oops.id, why);
  db_.post([this, oops, oops_dir = notice.config->daemon().oops_dir] {
    if (!db_.use("NOTICE_OOPS_FAILED",
                 [&](store::JobRepository& repo) { repo.insertOops(oops); })) {
      spdlog::error("NOTICE_OOPS_FAILED {}: not in jobd.oops", oops.id);
    }
    fileOops(oops_dir, oops);
  });
}

}  // namespace jobd::runtime
