// ProcessRunner: the child processes of one `runner = process` or `runner =
// python` section (SPEC §3), after Launchpad's TwistedJobRunner. Each child
// is jobd re-executed as `jobd __worker`, or `python -m jobd.worker`
// (python/jobd/worker.py), runs one job at a time and speaks the protocol
// of runtime/worker_protocol.hpp. A jobd child is reused after a job that
// completed and replaced after any other outcome; a Python worker is
// reused after any outcome it reported itself. Either is replaced after
// max_jobs_per_worker jobs, or a job that left it over max_worker_rss. Stopping a job
// (timeout, lost lease, shutdown) sends its child's process group SIGTERM,
// then SIGKILL after the section's kill_grace; a child that dies of a
// signal jobd did not send gives the outcome `crashed`, one that exits
// mid-job an OOPS, each with the tail of its stderr as the traceback.
// Lives on the io thread: children are watched with Asio descriptors, and
// reaped with waitpid on their own pid only.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "runtime/asio.hpp"
#include "runtime/job_outcome.hpp"

namespace jobd::runtime {

class WorkerChild;

class ProcessRunner {
 public:
  struct Options {
    config::SectionConfig section;
    config::MailSettings mail;
    std::string conninfo;  // the daemon's database, for the job's own transaction
    bool pooled = false;   // conninfo may lead to PgBouncer: no session settings
    std::string owner;     // the lease owner the job's completion is fenced on
    std::string log_level;
  };
  using Done = std::function<void(JobOutcome)>;

  ProcessRunner(boost::asio::io_context& io, Options options);
  ~ProcessRunner();
  ProcessRunner(const ProcessRunner&) = delete;
  ProcessRunner& operator=(const ProcessRunner&) = delete;

  // Runs job in an idle child, or a new one; done runs on the io thread
  // with its outcome, progress with each of its reports (before done).
  // Cancelling token stops the child.
  void run(ClaimedJob job, std::shared_ptr<CancellationToken> token, Done done,
           std::function<void(ProgressUpdate)> progress = nullptr);
  // Closes idle children; busy ones exit after their job.
  void shutdown();
  // A reload: new children get these options; the children started with
  // the old ones exit after their job (idle ones at once).
  void reconfigure(Options options);
  // Children alive (idle, busy or exiting), and of those idle.
  std::size_t children() const { return children_.size(); }
  std::size_t idle() const { return idle_.size(); }
  std::uint64_t started() const { return started_; }

 private:
  std::shared_ptr<WorkerChild> spawn(std::string& error);
  void finished(const std::shared_ptr<WorkerChild>& child, bool reusable);
  void gone(const std::shared_ptr<WorkerChild>& child);
  // Whether child is due for replacement: max_jobs_per_worker, max_worker_rss.
  bool worn(const WorkerChild& child) const;

  boost::asio::io_context& io_;
  Options options_;
  std::set<std::shared_ptr<WorkerChild>> children_;
  std::vector<std::shared_ptr<WorkerChild>> idle_;
  std::uint64_t started_ = 0;
  std::uint64_t generation_ = 0;  // of options_; children remember theirs
  bool shut_down_ = false;
};

}  // namespace jobd::runtime
