// The `fail` handler: ends as json_data.error says: retry, user,
// The source is immutable and shared by worker threads.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor failDescriptor();
std::unique_ptr<runtime::IJobSource> makeFailSource(const config::SectionConfig& section);

}  // namespace jobd::jobtypes
