// OopsReport: one OOPS (SPEC §4.2's jobd.oops row, Launchpad's OOPS), made
// the same way whatever raised it: a failed attempt (OutcomeRecorder), an
// expired lease (LeaseRescuer), a notice that could not be sent
// (NoticeSender). The store writes it to jobd.oops, and runtime::fileOops
// to `oops_dir`. A value type; no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

namespace jobd {

struct OopsReport {
  std::string id;        // newOopsId()
  std::string reporter;  // oopsReporter()
  std::int64_t job_id = 0;
  std::string job_type;
  int attempt = 0;
  std::string type;  // SPEC §5's <Type>: TimeoutError, LeaseExpired, NoticeError ...
  std::string value;
  std::string traceback;
  std::map<std::string, std::string> vars;  // the handler's; see varsJson()
  std::string hostname;
};

// "OOPS-" and 16 random hex digits: the only way jobd makes an OOPS id.
std::string newOopsId(std::mt19937_64& rng);
// Whether id has newOopsId's form: OOPS- and 16 lowercase hex digits.
bool validOopsId(const std::string& id);

// "<oops_prefix>-<section>" (SPEC §3); "<oops_prefix>-rescuer" for a job
// type this daemon does not serve.
std::string oopsReporter(const std::string& oops_prefix, const std::string& section);

// A new report on one attempt of one job, with its id, reporter, job fields
// and host; the caller adds type, value, traceback and vars.
struct OopsSubject {
  std::int64_t job_id = 0;
  std::string job_type;
  int attempt = 0;
  std::string section;
};
OopsReport newOopsReport(std::mt19937_64& rng, const std::string& oops_prefix,
                         const OopsSubject& subject, const std::string& hostname);

// The vars column: the report's vars plus job_id and job_type, always.
nlohmann::json oopsVarsJson(const OopsReport& oops);

// The whole report as `oops_dir` files hold it; time is UTC ISO 8601.
nlohmann::json oopsJson(const OopsReport& oops, const std::string& time);

}  // namespace jobd
