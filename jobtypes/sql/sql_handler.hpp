// The `sql` handler (SPEC §5): runs the section's `statement` in the job's
// own transaction, $1 bound to json_data (jsonb) and $2 to the job id
// (bigint), on the section's dbuser. SQLSTATE class 40 and JR000 are retry
// errors, JU000 a user error, JS000 a request to suspend; any other error is
// an OOPS of type SqlState<code>. The source is immutable and shared by
// worker threads.
#pragma once

#include <memory>
#include <string_view>

#include "config/config.hpp"
#include "config/handler_descriptor.hpp"
#include "runtime/job_source.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor sqlDescriptor();
// Whether sql holds more than one statement: text other than white space
// and comments after a `;` that is outside quotes, dollar quotes and
// comments. A `;` that ends the statement is fine.
bool hasSeveralStatements(std::string_view sql);
std::unique_ptr<runtime::IJobSource> makeSqlSource(const config::SectionConfig& section);

}  // namespace jobd::jobtypes
