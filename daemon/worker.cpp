#include "worker.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>

#include "core/errors.hpp"
#include "logging.hpp"
#include "registry.hpp"
#include "runtime/job_executor.hpp"
#include "runtime/progress.hpp"
#include "runtime/worker_protocol.hpp"

namespace jobd::cli {
namespace {

constexpr int kSocket = 3;

namespace worker = runtime::worker;

// SPEC §3 memory_limit: the runner's address-space limit. A sanitizer
// build reserves terabytes of shadow address space before main(), so there
// the limit counts from what is in use now.
void applyMemoryLimit(const std::optional<std::uint64_t>& limit) {
  if (!limit) {
    return;
  }
  std::uint64_t base = 0;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  std::ifstream statm("/proc/self/statm");  // the first field: pages in use
  std::uint64_t pages = 0;
  statm >> pages;
  base = pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
#endif
  rlimit r{base + *limit, base + *limit};
  if (setrlimit(RLIMIT_AS, &r) != 0) {
    throw Error(std::string("cannot set memory_limit: ") + std::strerror(errno));
  }
}

// Frames to the daemon come from the job's thread and from the progress
// throttle's: one at a time.
std::mutex g_write_mutex;

void sendFrame(const nlohmann::json& message) {
  std::lock_guard<std::mutex> lock(g_write_mutex);
  worker::writeFrame(kSocket, message);
}

void sendProgress(const runtime::ProgressUpdate& update) {
  sendFrame({{"op", "progress"}, {"report", runtime::progressToJson(update)}});
}

// Asks the daemon whether it still holds the job's lease; blocks until it
// answers (a paused daemon answers late, and then no).
bool daemonHoldsLease() {
  sendFrame({{"op", "may_commit"}});
  std::optional<nlohmann::json> reply = worker::readFrame(kSocket);
  return reply && reply->at("op") == "may_commit" && reply->at("ok").get<bool>();
}

}  // namespace

int runWorker() {
  // Die with the daemon; keep the socket from the programs jobs run.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (fcntl(kSocket, F_SETFD, FD_CLOEXEC) != 0) {
    throw UsageError(std::string(runtime::worker::kCommand) +
                     " is started by jobd serve, not by hand");
  }
  std::optional<nlohmann::json> hello = worker::readFrame(kSocket);
  if (!hello || hello->at("op") != "hello") {
    return 0;
  }
  const worker::Hello settings = worker::helloFromJson(*hello);
  if (getppid() != settings.daemon_pid) {
    return 1;  // the daemon died before PR_SET_PDEATHSIG took effect
  }
  setupLogging(settings.log_level, 0, false);
  const config::SectionConfig& section = settings.section;
  applyMemoryLimit(section.memory_limit);
  std::unique_ptr<runtime::IJobSource> source = jobtypes::makeJobSource(section, settings.mail);
  // Through PgBouncer the runner's job connections make no session
  // setting either: each transaction sets its own (SET LOCAL).
  runtime::JobExecutor executor(settings.conninfo, settings.owner, settings.pooled);
  // The job's reports go to the daemon at most once a second, and what is
  // left just before its outcome; the daemon writes them.
  runtime::ProgressThrottle progress([](const std::vector<runtime::ProgressReport>& reports) {
    try {
      for (const runtime::ProgressReport& report : reports) {
        sendProgress(report.update);
      }
    } catch (const std::exception&) {
      // The daemon has gone: the job's own reads end the child.
    }
  });
  while (std::optional<nlohmann::json> message = worker::readFrame(kSocket)) {
    runtime::ClaimedJob job = worker::jobFromJson(message->at("job"));
    runtime::CancellationToken token;
    token.setLeaseCheck(daemonHoldsLease);
    runtime::AttemptKey key = runtime::keyOf(job);
    runtime::JobOutcome outcome =
        executor.execute(job, *source, section, token, [&](runtime::ProgressUpdate update) {
          progress.report(key, job.job_type, std::move(update));
        });
    if (std::optional<runtime::ProgressUpdate> left = progress.take(key)) {
      sendProgress(*left);
    }
    sendFrame({{"op", "outcome"}, {"outcome", worker::outcomeToJson(outcome)}});
  }
  return 0;
}

}  // namespace jobd::cli
