// The configuration descriptor of the `sql` handler: one SQL statement run in
// the job's own transaction, $1 bound to json_data and $2 to the job id.
#pragma once

#include "config/handler_descriptor.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor sqlDescriptor();

}  // namespace jobd::jobtypes
