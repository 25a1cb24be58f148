// The `noop` handler: does nothing and completes: smoke tests and
// The source is immutable and shared by worker threads.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor noopDescriptor();
std::unique_ptr<runtime::IJobSource> makeNoopSource(const config::SectionConfig& section);

}  // namespace jobd::jobtypes
