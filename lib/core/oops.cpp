#include "core/oops.hpp"

#include "core/text.hpp"

namespace jobd {

std::string newOopsId(std::mt19937_64& rng) {
  return "OOPS-" + hex16(rng());
}

bool validOopsId(const std::string& id) {
  if (id.size() != 21 || id.rfind("OOPS-", 0) != 0) {
    return false;
  }
  return id.find_first_not_of("0123456789abcdef", 5) == std::string::npos;
}

std::string oopsReporter(const std::string& oops_prefix, const std::string& section) {
  return oops_prefix + "-" + (section.empty() ? std::string("rescuer") : section);
}

OopsReport newOopsReport(std::mt19937_64& rng, const std::string& oops_prefix,
                         const OopsSubject& subject, const std::string& hostname) {
  OopsReport report;
  report.id = newOopsId(rng);
  report.reporter = oopsReporter(oops_prefix, subject.section);
  report.job_id = subject.job_id;
  report.job_type = subject.job_type;
  report.attempt = subject.attempt;
  report.hostname = hostname;
  return report;
}

nlohmann::json oopsVarsJson(const OopsReport& oops) {
  nlohmann::json vars = nlohmann::json::object();
  for (const auto& [key, value] : oops.vars) {
    vars[key] = value;
  }
  vars["job_id"] = std::to_string(oops.job_id);
  vars["job_type"] = oops.job_type;
  return vars;
}

nlohmann::json oopsJson(const OopsReport& oops, const std::string& time) {
  return {{"id", oops.id},
          {"time", time},
          {"reporter", oops.reporter},
          {"job_id", oops.job_id},
          {"job_type", oops.job_type},
          {"attempt", oops.attempt},
          {"type", oops.type},
          {"value", oops.value},
          {"traceback", oops.traceback},
          {"vars", oopsVarsJson(oops)},
          {"hostname", oops.hostname}};
}

}  // namespace jobd
