// JobExecutor: runs one claimed job on the calling worker thread and says
// what became of it (SPEC §5). A source that uses the database gets a
// transaction on a connection of its section's dbuser (cached per worker
// thread), and the fenced COMPLETED mark is written in that same
// transaction, so the work and the mark commit together or not at all.
// Every other outcome is returned for the OutcomeRecorder to write.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "config/config.hpp"
#include "runtime/job_outcome.hpp"
#include "runtime/job_source.hpp"

namespace jobd::runtime {

class JobExecutor {
 public:
  // conninfo: the daemon's database; owner: its lease owner name; pooled:
  // conninfo may lead to a transaction pooler, so no session setting is
  // made (ConnectionSettings).
  JobExecutor(std::string conninfo, std::string owner, bool pooled = false)
      : conninfo_(std::move(conninfo)), owner_(std::move(owner)), pooled_(pooled) {}

  // Never throws: every failure becomes the outcome's kind and message.
  // progress: where the job's reports go (JobContext::progress_sink).
  JobOutcome execute(const ClaimedJob& job, const IJobSource& source,
                     const config::SectionConfig& section, const CancellationToken& cancellation,
                     std::function<void(ProgressUpdate)> progress = nullptr) const;

 private:
  std::unique_ptr<pqxx::work> begin(const std::string& conninfo,
                                    std::chrono::milliseconds idle_limit,
                                    const CancellationToken& cancellation, std::int64_t job_id,
                                    std::chrono::steady_clock::time_point connect_by) const;
  void runInOwnTransaction(IRunnableJob& runnable, JobContext& context,
                           const config::SectionConfig& section, JobOutcome& outcome) const;

  std::string conninfo_;
  std::string owner_;
  bool pooled_;
};

}  // namespace jobd::runtime
