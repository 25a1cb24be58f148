// The `person_merge` handler: merges a duplicate row of a table (default
// `person`) into a target row, in the job's own transaction on the
// section's dbuser, so the merge and the COMPLETED mark commit together.
// Every foreign key that references the table's key is found in the
// catalog and re-pointed; rows that would then break a unique constraint
// are removed first; the duplicate is marked merged. See README.md.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor personMergeDescriptor();
std::unique_ptr<runtime::IJobSource> makePersonMergeSource(const config::SectionConfig& section);

}  // namespace jobd::jobtypes
