// Job: one row of jobd.job as the store reads it (SPEC §4.1). A plain value
// type with no behaviour; passed between threads by copy or move.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/job_status.hpp"

namespace jobd {

struct Job {
  std::int64_t id = 0;
  std::string job_type;
  JobStatus status = JobStatus::kWaiting;
  std::string json_data = "{}";  // jsonb as text
  int priority = 0;
  std::optional<std::string> target;
  std::optional<std::string> requester;
  int attempt_count = 0;
  int max_retries = 0;
  // Timestamps as PostgreSQL prints them (ISO 8601, UTC).
  std::optional<std::string> scheduled_start;
  std::optional<std::string> lease_expires;
  std::optional<std::string> lease_owner;
  std::string date_created;
  std::optional<std::string> date_started;
  std::optional<std::string> date_finished;
  std::optional<std::string> log;
};

}  // namespace jobd
