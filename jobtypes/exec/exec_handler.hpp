// The `exec` handler (SPEC §5): runs `command` (an argv, no shell) with the
// job's json_data on stdin. The source is immutable and shared by worker
// threads.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor execDescriptor();
std::unique_ptr<runtime::IJobSource> makeExecSource(const config::SectionConfig& section);

}  // namespace jobd::jobtypes
