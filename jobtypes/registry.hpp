// The registry of compiled-in handlers (SPEC §5). Lists every handler
// explicitly, so that what a jobd binary can run is read in one place.
// Config validates sections against handlerCatalog(); the daemon makes one
// job source per served section with makeJobSource(). Built once, read from
// any thread.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

const config::HandlerCatalog& handlerCatalog();

// Throws ConfigError when the section's handler cannot run here.
std::unique_ptr<runtime::IJobSource> makeJobSource(const config::SectionConfig& section,
                                                   const config::MailSettings& mail);

}  // namespace jobd::jobtypes
