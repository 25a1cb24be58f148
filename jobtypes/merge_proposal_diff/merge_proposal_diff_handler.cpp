#include "merge_proposal_diff_handler.hpp"

#include <signal.h>

#include <cerrno>
#include <climits>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/duration.hpp"
#include "core/errors.hpp"
#include "core/host.hpp"
#include "core/job_errors.hpp"
#include "core/text.hpp"
#include "runtime/child_process.hpp"

namespace jobd::jobtypes {
namespace {

namespace fs = std::filesystem;

struct Settings {
  std::uint64_t max_diff_size = 1024ULL * 1024;
  std::string repository_root;  // required by the configuration
  Duration timeout{};
  Duration kill_grace{};
};

std::string field(const nlohmann::json& data, const char* name) {
  auto it = data.find(name);
  if (it == data.end() || !(it->is_string() || it->is_number_integer())) {
    throw UserError(std::string("merge_proposal_diff: json_data.") + name + " is required");
  }
  std::string value = it->is_string() ? it->get<std::string>() : it->dump();
  if (value.empty()) {
    throw UserError(std::string("merge_proposal_diff: json_data.") + name + " is empty");
  }
  return value;
}

// git gc's own rule (builtin/gc.c, lock_repo_for_gc): gc.pid holds "<pid>
// <host>", and locks the repository while it is younger than 12 hours and
// names a process that runs on this host, or any process on another host
// (which this host cannot check). Anything else is left over from a gc
// that died, and git itself would take the lock over.
bool gcRunning(const fs::path& pid_file) {
  std::error_code ec;
  auto written = fs::last_write_time(pid_file, ec);
  if (ec || fs::file_time_type::clock::now() - written > std::chrono::hours(12)) {
    return false;
  }
  std::ifstream in(pid_file);
  std::uintmax_t pid = 0;
  std::string host;
  if (!(in >> pid >> host)) {
    return false;
  }
  if (host != hostName()) {
    return true;
  }
  if (pid == 0 || pid > static_cast<std::uintmax_t>(INT_MAX)) {
    return false;
  }
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

class DiffJob : public runtime::IRunnableJob {
 public:
  DiffJob(const Settings& settings, std::int64_t proposal, std::string repository,
          std::string source, std::string target)
      : settings_(settings),
        proposal_(proposal),
        repository_(std::move(repository)),
        source_(std::move(source)),
        target_(std::move(target)) {}

  void run(runtime::JobContext& context) override {
    context.oops_vars["repository"] = repository_;
    context.oops_vars["source"] = source_;
    context.oops_vars["target"] = target_;
    checkRepository();
    std::string source_commit = resolve(context, source_);
    std::string target_commit = resolve(context, target_);
    runtime::ChildResult base = git(context, {"merge-base", target_commit, source_commit}, 4096);
    if (base.exit_status == 1) {
      throw UserError("merge_proposal_diff: " + source_ + " and " + target_ +
                      " have no common ancestor");
    }
    std::string merge_base = checked(base, "merge-base");
    runtime::ChildResult diff = git(context,
                                    {"diff", "--no-color", "--no-ext-diff", "--no-textconv",
                                     "--find-renames", merge_base, source_commit},
                                    settings_.max_diff_size);
    checked(diff, "diff");
    runtime::ChildResult numstat = git(context,
                                       {"diff", "--numstat", "--no-ext-diff", "--no-textconv",
                                        "--find-renames", "-z", merge_base, source_commit},
                                       1 << 26);
    checked(numstat, "diff --numstat");
    Stat stat = parseNumstat(numstat.stdout_text);

    pqxx::work& txn = *context.transaction;
    txn.exec_params0(
        R"sql(
INSERT INTO jobd.merge_proposal_diff
  (merge_proposal, repository, source_ref, target_ref, source_commit, target_commit, merge_base,
   diff, diff_bytes, truncated, files_changed, lines_added, lines_removed, job_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (merge_proposal) DO UPDATE SET
  repository = EXCLUDED.repository, source_ref = EXCLUDED.source_ref,
  target_ref = EXCLUDED.target_ref, source_commit = EXCLUDED.source_commit,
  target_commit = EXCLUDED.target_commit, merge_base = EXCLUDED.merge_base,
  diff = EXCLUDED.diff, diff_bytes = EXCLUDED.diff_bytes, truncated = EXCLUDED.truncated,
  files_changed = EXCLUDED.files_changed, lines_added = EXCLUDED.lines_added,
  lines_removed = EXCLUDED.lines_removed, job_id = EXCLUDED.job_id, generated_at = now()
)sql",
        proposal_, repository_, source_, target_, source_commit, target_commit, merge_base,
        // A text column refuses NUL and bytes that are not UTF-8 (a Latin-1
        // file, a cut at the size limit): those become U+FFFD.
        storableText(diff.stdout_text), diffBytes(diff), diff.stdout_truncated, stat.files,
        stat.added, stat.removed, context.job.id);
  }

 private:
  struct Stat {
    int files = 0;
    long added = 0;
    long removed = 0;
  };

  // The repository as git will be given it: under repository_root once
  // every symbolic link is followed, so that neither `..` nor a link
  // leads git elsewhere.
  void checkRepository() {
    fs::path repo(repository_);
    if (!repo.is_absolute()) {
      throw UserError("merge_proposal_diff: repository must be an absolute path: " + repository_);
    }
    for (const fs::path& part : repo) {
      if (part == "." || part == "..") {
        throw UserError("merge_proposal_diff: repository must not hold . or .. : " + repository_);
      }
    }
    std::error_code ec;
    fs::path real = fs::canonical(repo, ec);
    if (ec || !fs::is_directory(real, ec)) {
      throw UserError("merge_proposal_diff: no repository at " + repository_);
    }
    fs::path root = fs::canonical(settings_.repository_root, ec);
    if (ec) {
      throw RetryError("repository_root " + settings_.repository_root + ": " + ec.message(),
                       "RepositoryRootMissing");
    }
    std::string under = root.string() == "/" ? "/" : root.string() + "/";
    if (real.string().rfind(under, 0) != 0) {
      throw UserError("merge_proposal_diff: repository " + repository_ + " is outside " +
                      settings_.repository_root);
    }
    real_repository_ = real.string();
    // git is given the repository itself (GIT_DIR), never left to search:
    // a directory that is no repository would lead it to one above, and a
    // `.git` file (a worktree's, a submodule's) to one anywhere.
    fs::path git_dir;
    if (fs::is_directory(real / ".git", ec)) {
      git_dir = real / ".git";
    } else if (fs::exists(real / ".git", ec)) {
      throw UserError("merge_proposal_diff: " + repository_ +
                      " has a .git file (a worktree or submodule), which is not supported: give "
                      "the repository itself");
    } else if (fs::is_regular_file(real / "HEAD", ec) && fs::is_directory(real / "objects", ec)) {
      git_dir = real;  // a bare repository
    } else {
      throw UserError("merge_proposal_diff: " + repository_ + " is not a git repository");
    }
    git_dir = fs::canonical(git_dir, ec);  // a .git that is a link stays under the root too
    if (ec || git_dir.string().rfind(under, 0) != 0) {
      throw UserError("merge_proposal_diff: the git directory of " + repository_ + " is outside " +
                      settings_.repository_root);
    }
    git_dir_ = git_dir.string();
    // A writer holds the repository: try again later rather than read it
    // half-written.
    for (const char* lock : {"index.lock", "HEAD.lock", "packed-refs.lock"}) {
      if (fs::exists(git_dir / lock, ec)) {
        throw RetryError(
            "repository " + repository_ + " is locked: " + (git_dir / lock).string() + " exists",
            "RepositoryLocked");
      }
    }
    if (gcRunning(git_dir / "gc.pid")) {
      throw RetryError("repository " + repository_ + " is locked: git gc runs (" +
                           (git_dir / "gc.pid").string() + ")",
                       "RepositoryLocked");
    }
  }

  runtime::ChildResult git(runtime::JobContext& context, std::vector<std::string> args,
                           std::size_t keep) const {
    runtime::ChildSpec spec;
    // The repository's own configuration must run nothing: no fsmonitor
    // hook; the diffs below also refuse external diff drivers and textconv.
    // protocol.allow=never: a partial clone's missing objects are an error,
    // never a fetch from wherever its remote points.
    spec.argv = {"git",           "-c", "core.fsmonitor=false", "-c", "protocol.allow=never", "-C",
                 real_repository_};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    // None of the daemon's own GIT_* variables (GIT_DIR, GIT_CONFIG_*,
    // GIT_TRACE ...) reaches git.
    for (std::string& entry : runtime::childEnvironment()) {
      if (entry.rfind("GIT_", 0) != 0) {
        spec.env.push_back(std::move(entry));
      }
    }
    spec.env.push_back("GIT_DIR=" + git_dir_);
    spec.env.push_back("GIT_NO_LAZY_FETCH=1");
    spec.env.push_back("GIT_TERMINAL_PROMPT=0");
    spec.env.push_back("LC_ALL=C");
    spec.deadline = context.job.claimed_at + settings_.timeout;
    spec.kill_grace = settings_.kill_grace;
    spec.capture_stdout = keep;
    runtime::ChildResult result = runtime::runChild(spec, context.cancellation);
    if (!result.started) {
      throw OopsError("GitError", result.start_error);
    }
    if (result.timed_out) {
      throw TimeoutError(result.stderr_tail);
    }
    if (result.cancelled) {
      throw RetryError("stopped by jobd", "Cancelled");
    }
    return result;
  }

  std::string resolve(runtime::JobContext& context, const std::string& ref) const {
    if (ref.rfind('-', 0) == 0) {
      throw UserError("merge_proposal_diff: bad ref " + ref);
    }
    runtime::ChildResult r = git(
        context, {"rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"}, 4096);
    if (r.exit_status != 0) {
      throw UserError("merge_proposal_diff: no commit " + ref + " in " + repository_);
    }
    return trimmed(r.stdout_text);
  }

  static std::string trimmed(const std::string& text) {
    std::size_t end = text.find_last_not_of("\r\n ");
    return end == std::string::npos ? "" : text.substr(0, end + 1);
  }

  std::string checked(const runtime::ChildResult& r, const char* what) const {
    if (r.signal != 0 || r.exit_status != 0) {
      throw OopsError("GitError",
                      std::string("git ") + what + " failed: " + runtime::lastLine(r.stderr_tail),
                      r.stderr_tail);
    }
    return trimmed(r.stdout_text);
  }

  // -z: "added\tremoved\tpath\0", or for a rename "added\tremoved\t\0old\0new\0";
  // a binary file counts "-" lines.
  static Stat parseNumstat(const std::string& text) {
    Stat stat;
    std::size_t at = 0;
    while (at < text.size()) {
      std::size_t end = text.find('\0', at);
      std::string record = text.substr(at, end - at);
      at = end == std::string::npos ? text.size() : end + 1;
      std::istringstream fields(record);
      std::string added, removed;
      std::getline(fields, added, '\t');
      std::getline(fields, removed, '\t');
      std::string path;
      std::getline(fields, path);
      if (path.empty()) {  // a rename: two more records, old and new names
        for (int skip = 0; skip < 2 && at < text.size(); ++skip) {
          std::size_t next = text.find('\0', at);
          at = next == std::string::npos ? text.size() : next + 1;
        }
      }
      ++stat.files;
      stat.added += added == "-" ? 0 : std::stol(added);
      stat.removed += removed == "-" ? 0 : std::stol(removed);
    }
    return stat;
  }

  static std::int64_t diffBytes(const runtime::ChildResult& diff) {
    return static_cast<std::int64_t>(diff.stdout_bytes);
  }

  const Settings& settings_;
  std::int64_t proposal_;
  std::string repository_;       // as json_data gives it
  std::string real_repository_;  // what git is given: links followed
  std::string git_dir_;          // its .git directory, or itself when bare
  std::string source_;
  std::string target_;
};

class DiffSource : public runtime::IJobSource {
 public:
  explicit DiffSource(Settings settings) : settings_(std::move(settings)) {}

  bool usesDatabase() const override { return true; }

  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json& data) const override {
    if (!data.is_object()) {
      throw UserError("merge_proposal_diff: json_data must be an object");
    }
    std::int64_t proposal = 0;
    try {
      proposal = std::stoll(field(data, "merge_proposal"));
    } catch (const std::logic_error&) {
      throw UserError("merge_proposal_diff: json_data.merge_proposal must be a number");
    }
    return std::make_unique<DiffJob>(settings_, proposal, field(data, "repository"),
                                     field(data, "source"), field(data, "target"));
  }

  std::string operationDescription(const runtime::ClaimedJob& job) const override {
    return "generating the diff for a merge proposal (job " + std::to_string(job.id) + ")";
  }

 private:
  Settings settings_;
};

}  // namespace

config::HandlerDescriptor mergeProposalDiffDescriptor() {
  return {"merge_proposal_diff",
          "stores the merge-base diff of json_data.source against json_data.target",
          {{"max_diff_size", false, "1M", "diffs larger than this are truncated and flagged",
            [](const std::string& value) -> std::optional<std::string> {
              if (!parseSize(value)) {
                return "must be a size such as 512K or 1M";
              }
              return std::nullopt;
            }},
           {"repository_root", true, "",
            "the directory every json_data.repository must be under (symbolic links followed)",
            [](const std::string& value) -> std::optional<std::string> {
              if (value.empty() || value[0] != '/') {
                return "must be an absolute path";
              }
              return std::nullopt;
            }}}};
}

std::unique_ptr<runtime::IJobSource> makeMergeProposalDiffSource(
    const config::SectionConfig& section) {
  Settings settings;
  if (auto it = section.handler_options.find("max_diff_size");
      it != section.handler_options.end()) {
    settings.max_diff_size = parseSize(it->second).value_or(settings.max_diff_size);
  }
  if (auto it = section.handler_options.find("repository_root");
      it != section.handler_options.end()) {
    settings.repository_root = it->second;
    while (settings.repository_root.size() > 1 && settings.repository_root.back() == '/') {
      settings.repository_root.pop_back();
    }
  }
  settings.timeout = section.timeout;
  settings.kill_grace = section.kill_grace;
  return std::make_unique<DiffSource>(std::move(settings));
}

}  // namespace jobd::jobtypes
