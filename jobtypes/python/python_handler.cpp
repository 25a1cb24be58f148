#include "python_handler.hpp"

#include <stdexcept>

namespace jobd::jobtypes {
namespace {

// A dotted Python name: identifiers (ASCII here) joined by dots.
std::optional<std::string> checkDottedName(const std::string& value) {
  bool start = true;
  for (char c : value) {
    bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (c == '.' && !start) {
      start = true;
    } else if (letter || (digit && !start)) {
      start = false;
    } else {
      return "expected a dotted Python name such as app.jobs, got '" + value + "'";
    }
  }
  if (start) {
    return "expected a dotted Python name such as app.jobs, got '" + value + "'";
  }
  return std::nullopt;
}

class PythonSource : public runtime::IJobSource {
 public:
  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json&) const override {
    // Config refuses handler python without runner = python.
    throw std::logic_error("python jobs run only in the workers of a runner = python section");
  }
};

}  // namespace

config::HandlerDescriptor pythonDescriptor() {
  return {
      "python",
      "runner = python only: calls `callable` of `module` in a long-lived Python worker and runs "
      "the job object it returns",
      {{"module", true, "", "the Python module the workers import once, e.g. app.jobs",
        checkDottedName},
       {"callable", false, "make_job",
        "the module's callable that maps a job (a jobd.JobContext) to an object with run()",
        checkDottedName},
       {"python", false, "/usr/bin/python3", "the interpreter the workers run",
        [](const std::string& value) -> std::optional<std::string> {
          if (value.empty() || value.front() != '/') {
            return "expected an absolute path, got '" + value + "'";
          }
          return std::nullopt;
        }},
       {"pythonpath", false, "",
        "directories (colon-separated) put before PYTHONPATH in the workers, relative to the "
        "daemon's working directory unless absolute",
        nullptr}}};
}

std::unique_ptr<runtime::IJobSource> makePythonSource(const config::SectionConfig&) {
  return std::make_unique<PythonSource>();
}

}  // namespace jobd::jobtypes
