// The `email` handler: sends json_data {to, cc?, subject, body, headers?}
// through the [mail] settings' SMTP server, with a Message-ID made from the
// job id, so a retried job sends the same message again, not another one.
// Connection failures and SMTP 4xx replies are retry errors; 5xx replies
// and bad addresses or fields are user errors. See README.md.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor emailDescriptor();
std::unique_ptr<runtime::IJobSource> makeEmailSource(const config::SectionConfig& section,
                                                     const config::MailSettings& mail);

}  // namespace jobd::jobtypes
