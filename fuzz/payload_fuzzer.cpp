// libFuzzer target: one handler's payload validation (its job source's
// makeRunnable, SPEC §5), compiled once per handler with JOBD_FUZZ_HANDLER
// naming it. Any JSON document (json_data comes from jsonb, so it is always
// one) must give a runnable job or a UserError naming what is wrong; any
// other exception, a crash, or an ASan/UBSan report is a defect. Inputs
// that are not JSON are skipped.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.hpp"
#include "core/job_errors.hpp"
#include "registry.hpp"

#ifndef JOBD_FUZZ_HANDLER
#error "JOBD_FUZZ_HANDLER names the handler to fuzz"
#endif

namespace {

// A section for every handler, with the keys each one requires.
constexpr const char* kConfig = R"([mail]
from_address: jobd@example.com
[email]
[exec]
command: /bin/true
[fail]
[merge_proposal_diff]
repository_root: /nonexistent
[noop]
[person_merge]
[sleep]
[sql]
statement: SELECT 1
)";

const jobd::runtime::IJobSource& source() {
  static const auto config =
      jobd::config::Config::fromText(kConfig, "fuzz.conf", jobd::jobtypes::handlerCatalog());
  static const auto made =
      jobd::jobtypes::makeJobSource(*config->section(JOBD_FUZZ_HANDLER), config->mail());
  return *made;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return 0;
  }
  jobd::runtime::ClaimedJob job;
  job.id = 1;
  job.job_type = JOBD_FUZZ_HANDLER;
  job.section = JOBD_FUZZ_HANDLER;
  job.attempt = 1;
  job.json_data = text;
  job.payload_size = size;
  try {
    std::unique_ptr<jobd::runtime::IRunnableJob> runnable = source().makeRunnable(job, json);
    if (!runnable) {
      __builtin_trap();
    }
    (void)source().operationDescription(job);
  } catch (const jobd::UserError& e) {
    if (std::string(e.what()).empty()) {
      __builtin_trap();  // refused without saying why
    }
  }
  return 0;
}
