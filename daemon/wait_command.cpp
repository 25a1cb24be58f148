// jobd wait ID [--timeout DUR] (schema 16): blocks until the job is
// COMPLETED or FAILED, woken by NOTIFY jobd_finished at the commit that
// finished it, never by polling.
#include <chrono>
#include <iostream>
#include <limits>
#include <pqxx/pqxx>

#include "commands.hpp"
#include "core/duration.hpp"
#include "core/errors.hpp"
#include "core/job_status.hpp"
#include "store/database.hpp"
#include "store/job_store.hpp"
#include "store/migrations.hpp"

namespace jobd::cli {
namespace {

constexpr int kExitTempFail = 75;  // EX_TEMPFAIL: still not finished at --timeout

// Notes a notification about the job (or the session's end of one).
class Finished final : public pqxx::notification_receiver {
 public:
  Finished(pqxx::connection_base& conn, std::string id)
      : pqxx::notification_receiver(conn, "jobd_finished"), id_(std::move(id)) {}
  void operator()(const std::string& payload, int) override { heard_ |= payload == id_; }
  bool take() { return std::exchange(heard_, false); }

 private:
  std::string id_;
  bool heard_ = false;
};

bool finished(JobStatus status) {
  return status == JobStatus::kCompleted || status == JobStatus::kFailed;
}

}  // namespace

int cmdWait(const CommandLine& cl) {
  const auto started = std::chrono::steady_clock::now();
  const std::int64_t id =
      parseInteger("wait: ID", cl.positional.at(0), 1, std::numeric_limits<std::int64_t>::max());
  std::optional<Duration> timeout;
  if (auto text = cl.option("--timeout")) {
    timeout = parseDuration(*text);
    if (!timeout) {
      throw UsageError("wait: --timeout: expected a duration such as 30s or 5m, got '" + *text +
                       "'");
    }
  }
  // Without --timeout, for ever: an hour at a time.
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        timeout ? *timeout - (std::chrono::steady_clock::now() - started) : std::chrono::hours(1));
  };
  const std::string timeout_text = cl.option("--timeout").value_or("");
  auto config = loadConfig(cl);
  // LISTEN needs a session: listen_database when set (PostgreSQL itself
  // when `database` is a transaction pooler), as for migrate.
  const config::DaemonSettings& d = config->daemon();
  auto conn = store::connect(cl.database                  ? *cl.database
                             : !d.listen_database.empty() ? d.listen_database
                                                          : d.database,
                             "jobd wait");
  store::checkSchemaVersion(*conn);
  // LISTEN before the job is asked about: a finish that commits between
  // the two is either seen by jobd.watch or heard.
  Finished receiver(*conn, std::to_string(id));
  store::JobStore jobs(*conn);
  std::optional<store::JobStore::Ending> now;
  for (;;) {
    try {
      now = jobs.watch(id, std::min<std::chrono::milliseconds>(left(), std::chrono::seconds(1)));
      break;
    } catch (const pqxx::sql_error& e) {
      // 55P03: the row stayed locked (a job's own transaction committing,
      // an operator's command); once more, within --timeout.
      if (e.sqlstate() != "55P03" || left().count() <= 0) {
        if (e.sqlstate() == "55P03") {
          std::cerr << "jobd: job " << id << " was still locked after " << timeout_text << "\n";
          return kExitTempFail;
        }
        throw;
      }
    }
  }
  while (now && !finished(now->status)) {
    auto wait = std::chrono::duration_cast<std::chrono::microseconds>(left());
    if (wait.count() <= 0) {
      now = jobs.ending(id);  // as it stands at the end
      if (!now || finished(now->status)) {
        break;
      }
      std::cerr << "jobd: job " << id << " is still " << statusName(now->status) << " after "
                << timeout_text << "\n";
      return kExitTempFail;
    }
    conn->await_notification(static_cast<long>(wait.count() / 1000000),
                             static_cast<long>(wait.count() % 1000000));
    if (receiver.take()) {
      now = jobs.ending(id);
    }
  }
  if (!now) {
    throw NotFoundError("no job with id " + std::to_string(id) + " (or it was deleted)");
  }
  if (now->status == JobStatus::kFailed) {
    std::cerr << "jobd: job " << id << " FAILED"
              << (now->last_log_line.empty() ? std::string() : ": " + now->last_log_line) << "\n";
    return 1;
  }
  if (now->result) {
    std::cout << *now->result << std::endl;  // at once, before the exit
  }
  return 0;
}

}  // namespace jobd::cli
