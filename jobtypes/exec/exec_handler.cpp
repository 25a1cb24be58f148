#include "exec_handler.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "core/errors.hpp"
#include "core/job_errors.hpp"
#include "core/log.hpp"
#include "runtime/child_process.hpp"
#include "runtime/progress.hpp"

#include "config/argv.hpp"

namespace jobd::jobtypes {
namespace {

constexpr int kExTempFail = 75;  // EX_TEMPFAIL: a retry error
constexpr int kExDataErr = 65;   // EX_DATAERR: a user error
// An exec job's checkpoint comes back in JOBD_CHECKPOINT, and one
// environment string holds at most 128 KiB: larger ones are refused.
constexpr std::size_t kMaxExecCheckpoint = 100UL * 1000;
constexpr std::size_t kMaxReportLine = 128UL * 1024;

class ExecJob : public runtime::IRunnableJob {
 public:
  ExecJob(runtime::ChildSpec spec, bool stdout_result)
      : spec_(std::move(spec)), stdout_result_(stdout_result) {}

  void run(runtime::JobContext& context) override {
    context.oops_vars["command"] = spec_.argv.at(0);
    spec_.on_progress_line = [&context](std::string_view line) { takeReport(line, context); };
    runtime::ChildResult child = runtime::runChild(spec_, context.cancellation);
    if (!child.started) {
      throw OopsError("ExecError", child.start_error);
    }
    std::string message = runtime::lastLine(child.stderr_tail);
    if (child.timed_out) {
      throw TimeoutError(child.stderr_tail);
    }
    if (child.cancelled) {
      throw RetryError("stopped by jobd", "Cancelled");
    }
    if (child.signal != 0) {
      std::string type = "Signal" + std::to_string(child.signal);
      throw CrashError(
          type, message.empty() ? std::string("killed by ") + strsignal(child.signal) : message,
          child.stderr_tail);
    }
    switch (child.exit_status) {
      case 0:
        if (stdout_result_) {
          takeResult(child, context);
        }
        return;
      case kExTempFail:
        if (std::optional<std::chrono::milliseconds> after = retryAfter(child.stderr_tail)) {
          throw RateLimited(message, *after);
        }
        throw RetryError(message, "ExitStatus75");
      case kExDataErr:
        throw UserError(message, "ExitStatus65");
      default:
        throw OopsError("ExitStatus" + std::to_string(child.exit_status), message,
                        child.stderr_tail);
    }
  }

 private:
  // Exit 75 with a line "Retry-After: SECONDS" on stderr (as an HTTP 429
  // answer says it): rate limited, not a failed attempt.
  static std::optional<std::chrono::milliseconds> retryAfter(const std::string& err) {
    static const std::string kField = "Retry-After:";
    std::optional<std::chrono::milliseconds> after;
    std::string::size_type at = 0;
    while ((at = err.find(kField, at)) != std::string::npos) {
      if (at == 0 || err[at - 1] == '\n') {
        const char* start = err.c_str() + at + kField.size();
        char* end = nullptr;
        double seconds = std::strtod(start, &end);
        if (end != start && seconds >= 0 && seconds <= 86400 * 30 &&
            (*end == '\0' || *end == '\n' || *end == '\r' || *end == ' ')) {
          after = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
        }
      }
      at += kField.size();
    }
    return after;
  }

  // `result = stdout`: what the program wrote to stdout, a JSON value, is
  // the job's result; nothing written, no result.
  // Checked, and bounded by max_payload, by the JobExecutor.
  static void takeResult(const runtime::ChildResult& child, runtime::JobContext& context) {
    if (child.stdout_truncated) {
      throw OopsError("ResultTooLarge", "the program wrote " + std::to_string(child.stdout_bytes) +
                                            " bytes to stdout, over max_payload (" +
                                            std::to_string(context.job.max_result) + " bytes)");
    }
    context.result_text = child.stdout_text;
  }

  // A line the program wrote to JOBD_PROGRESS_FD: a JSON object with
  // percent, message and checkpoint, each optional. A line that is not
  // one is logged and skipped: the job goes on.
  static void takeReport(std::string_view line, runtime::JobContext& context) {
    std::optional<runtime::ReportRefused> refused;
    try {
      if (line == std::string_view("\0", 1)) {
        throw std::invalid_argument("a line over " + std::to_string(kMaxReportLine) + " bytes");
      }
      runtime::ProgressUpdate update = runtime::progressFromJson(runtime::parseReportJson(line));
      refused = runtime::checkReport(
          update, std::min<std::size_t>(context.job.max_result, kMaxExecCheckpoint));
      if (!refused && context.progress_sink) {
        context.progress_sink(std::move(update));
      }
    } catch (const std::exception& e) {  // not JSON, or not a report
      refused = runtime::ReportRefused{"ProgressNotReadable", errorLine(e.what())};
    }
    if (refused) {
      logs::warn("JOB_PROGRESS_REFUSED id={} type={}: {} ({}); the job goes on", context.job.id,
                 context.job.job_type, refused->reason, refused->type);
    }
  }

  runtime::ChildSpec spec_;
  bool stdout_result_;
};

class ExecSource : public runtime::IJobSource {
 public:
  explicit ExecSource(const config::SectionConfig& section)
      : argv_(config::splitWords(section.handler_options.at("command"))),
        timeout_(section.timeout),
        kill_grace_(section.kill_grace),
        memory_limit_(section.memory_limit),
        stdout_result_(section.handler_options.count("result") > 0 &&
                       section.handler_options.at("result") == "stdout") {}

  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob& job,
                                                      const nlohmann::json&) const override {
    runtime::ChildSpec spec;
    spec.argv = argv_;
    spec.env = runtime::childEnvironment();
    spec.env.push_back("JOBD_JOB_ID=" + std::to_string(job.id));
    spec.env.push_back("JOBD_JOB_TYPE=" + job.job_type);
    spec.env.push_back("JOBD_ATTEMPT=" + std::to_string(job.attempt));
    if (job.checkpoint) {
      // Compact, as it was checked (at most kMaxExecCheckpoint bytes, so
      // that it fits in one environment string, 128 KiB on Linux): jsonb
      // prints it with spaces.
      auto compact = nlohmann::json::parse(*job.checkpoint, nullptr, false);
      std::string text = compact.is_discarded() ? *job.checkpoint : compact.dump();
      if (text.size() <= kMaxExecCheckpoint) {
        spec.env.push_back("JOBD_CHECKPOINT=" + text);
      } else {
        logs::warn(
            "JOB_CHECKPOINT_DROPPED id={} type={}: its checkpoint is {} bytes, over the {} an "
            "exec job can be given; the job starts without it",
            job.id, job.job_type, text.size(), kMaxExecCheckpoint);
      }
    }
    spec.input = job.json_data.value_or("{}");
    spec.deadline = job.claimed_at + timeout_;
    spec.kill_grace = kill_grace_;
    spec.memory_limit = memory_limit_;
    if (stdout_result_) {
      // Room for white space around a result of max_payload bytes.
      spec.capture_stdout = job.max_result + 4096;
    }
    return std::make_unique<ExecJob>(std::move(spec), stdout_result_);
  }

 private:
  std::vector<std::string> argv_;
  Duration timeout_;
  Duration kill_grace_;
  std::optional<std::uint64_t> memory_limit_;
  bool stdout_result_;
};

}  // namespace

config::HandlerDescriptor execDescriptor() {
  return {"exec",
          "runs `command` with json_data on stdin; exit 0 completes, 75 retries (rate limited, "
          "attempt kept, with a stderr line Retry-After: SECONDS), 65 user error",
          {{"command", true, "", "argv split at white space, quotes group words; no shell runs it",
            [](const std::string& value) -> std::optional<std::string> {
              try {
                if (config::splitWords(value).empty()) {
                  return "must name a program";
                }
              } catch (const std::invalid_argument& e) {
                return std::string("cannot split into words: ") + e.what();
              }
              return std::nullopt;
            }},
           {"result", false, "none",
            "none, or stdout: what the program writes to stdout (a JSON value) is the job's "
            "result; otherwise stdout is discarded",
            [](const std::string& value) -> std::optional<std::string> {
              if (value == "none" || value == "stdout") {
                return std::nullopt;
              }
              return "expected none or stdout, got '" + value + "'";
            }}}};
}

std::unique_ptr<runtime::IJobSource> makeExecSource(const config::SectionConfig& section) {
  return std::make_unique<ExecSource>(section);
}

}  // namespace jobd::jobtypes
