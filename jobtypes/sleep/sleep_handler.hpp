// The `sleep` handler: sleeps for json_data.ms milliseconds, then
// The source is immutable and shared by worker threads.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor sleepDescriptor();
std::unique_ptr<runtime::IJobSource> makeSleepSource(const config::SectionConfig& section);

}  // namespace jobd::jobtypes
