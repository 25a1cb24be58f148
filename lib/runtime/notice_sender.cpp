#include "runtime/notice_sender.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <nlohmann/json.hpp>

#include "core/log.hpp"
#include "mail/mailer.hpp"
#include "runtime/oops_file.hpp"

namespace jobd::runtime {

NoticeSender::NoticeSender(DatabaseThread& db, std::string hostname)
    : db_(db), hostname_(std::move(hostname)), thread_([this] { run(); }) {}

NoticeSender::~NoticeSender() {
  stop();
}

Notice Notice::of(const JobOutcome& outcome, std::optional<std::string> oops_id,
                  std::shared_ptr<const config::Config> config) {
  Notice notice;
  notice.job_id = outcome.job.id;
  notice.attempt = outcome.job.attempt;
  notice.job_type = outcome.job.job_type;
  notice.section = outcome.job.section;
  notice.operation = outcome.operation;
  notice.message = outcome.message;
  notice.to = NoticeSender::recipients(outcome, oops_id.has_value(), *config);
  notice.oops_id = std::move(oops_id);
  notice.config = std::move(config);
  return notice;
}

void NoticeSender::stop() {
  std::vector<Notice> unsent;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
    unsent.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
  }
  abort_ = true;  // the send in flight gives up within about a second
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  if (!unsent.empty()) {
    logs::warn("NOTICE_UNSENT {} notices were still queued at stop: recorded as NoticeError",
               unsent.size());
    recordUnsent(std::move(unsent), "jobd stopped before it was sent", std::chrono::seconds(5));
  } else {
    // Every record posted before (a send that failed, or was aborted,
    // while the outcomes thread was busy) is written before this one runs:
    // the daemon stops that thread next, dropping what is still queued.
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> written = done->get_future();
    db_.post([done] { done->set_value(); });
    if (written.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      logs::error(
          "NOTICE_RECORDS_LATE the NoticeError records of failed sends were not written within "
          "5 s of the stop; they may be lost");
    }
  }
}

void NoticeSender::send(Notice notice) {
  if (notice.to.empty()) {
    return;
  }
  bool stopping = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping = stopping_;
    if (!stopping_ && queue_.size() < kMaxQueued) {
      overflowing_ = false;
      queue_.push_back(std::move(notice));
      wake_.notify_one();
      return;
    }
    if (!stopping_ && !overflowing_) {
      overflowing_ = true;
      logs::error(
          "NOTICE_QUEUE_FULL {} notices wait for the mail server: further ones are recorded as "
          "NoticeError OOPS reports instead",
          kMaxQueued);
    }
  }
  std::vector<Notice> dropped;
  dropped.push_back(std::move(notice));
  recordUnsent(std::move(dropped),
               stopping ? "jobd stopped before it was sent" : "the notice queue was full",
               std::chrono::milliseconds(0));
}

void NoticeSender::run() {
  for (;;) {
    Notice notice;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        return;
      }
      notice = std::move(queue_.front());
      queue_.pop_front();
    }
    deliver(notice);
  }
}

std::vector<std::string> NoticeSender::recipients(const JobOutcome& outcome, bool oops,
                                                  const config::Config& config) {
  std::vector<std::string> to;
  auto add = [&](const std::string& address) {
    if (!mail::Mailer::validAddress(address)) {
      logs::warn("NOTICE_BAD_ADDRESS job={}: skipping {}", outcome.job.id,
                 nlohmann::json(address).dump());
    } else if (std::find(to.begin(), to.end(), address) == to.end()) {
      to.push_back(address);
    }
  };
  try {
    nlohmann::json data = nlohmann::json::parse(outcome.job.json_data.value_or("{}"));
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
  for (const std::string& address : outcome.recipients) {  // getErrorRecipients()
    add(address);
  }
  if (oops) {
    if (const config::SectionConfig* section = config.section(outcome.job.section)) {
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
  return product + " error while " + notice.operation;
}

std::string NoticeSender::body(const Notice& notice) {
  const std::string& product = notice.config->mail().product_name;
  if (notice.oops_id) {
    return product +
           " encountered an internal error during the following operation: " + notice.operation +
           ".  It was logged with id " + *notice.oops_id + ".  Sorry for the inconvenience.\n";
  }
  return product + " encountered an error during the following operation: " + notice.operation +
         ".  " + notice.message + "\n";
}

void NoticeSender::deliver(const Notice& notice) {
  mail::Mailer mailer(notice.config->mail());
  mail::MailMessage message;
  message.from = mailer.fromAddress();
  message.to = notice.to;
  message.subject = subject(notice);
  message.body = body(notice);
  message.message_id = "jobd.notice." + std::to_string(notice.job_id) + "." +
                       std::to_string(notice.attempt) + "@" + hostname_;
  mail::SendResult sent = mailer.send(message, &abort_);
  if (sent.kind == mail::SendResult::Kind::kSent) {
    logs::info("NOTICE_SENT job={} kind={} to={}", notice.job_id,
               notice.oops_id ? "oops" : "user_error", notice.to.size());
    return;
  }
  std::string why = abort_ ? "jobd stopped before it was sent" : sent.describe();
  logs::error("NOTICE_FAILED job={}: {}", notice.job_id, why);
  recordUnsent({notice}, why, std::chrono::milliseconds(0));  // stop() waits for it
}

void NoticeSender::recordUnsent(std::vector<Notice> notices, std::string why,
                                std::chrono::milliseconds wait) {
  std::size_t count = notices.size();
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  auto write = [this, notices = std::move(notices), why = std::move(why), done] {
    std::vector<OopsReport> oopses;
    oopses.reserve(notices.size());
    for (const Notice& notice : notices) {
      OopsReport oops = newOopsReport(
          db_rng_, notice.config->daemon().oops_prefix,
          {notice.job_id, notice.job_type, notice.attempt, notice.section}, hostname_);
      oops.type = "NoticeError";
      oops.value = "could not send the " + std::string(notice.oops_id ? "OOPS" : "user error") +
                   " notice: " + why;
      oops.vars["notice_for"] = notice.oops_id.value_or("user error");
      oopses.push_back(std::move(oops));
    }
    db_.use("NOTICE_OOPS_FAILED", [&](store::RuntimeStore& repo) { repo.insertOopses(oopses); });
    for (std::size_t i = 0; i < oopses.size(); ++i) {
      fileOops(notices[i].config->daemon().oops_dir, oopses[i]);
    }
    done->set_value();
  };
  if (db_.context().get_executor().running_in_this_thread()) {
    // send() from the outcomes thread itself (a notice of the batch being
    // written while the sender stops): at once, since stop()'s wait for
    // what was posted before it may be over already.
    write();
    return;
  }
  db_.post(std::move(write));
  if (wait.count() > 0 && finished.wait_for(wait) != std::future_status::ready) {
    logs::error(
        "NOTICE_RECORDS_LATE {} NoticeError records were not written within {} ms; they "
        "may be lost",
        count, wait.count());
  }
}

}  // namespace jobd::runtime
