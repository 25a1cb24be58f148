// The configuration descriptor of the `exec` handler: runs `command` (an
// argv, no shell) with the job's json_data on stdin.
#pragma once

#include "config/handler_descriptor.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor execDescriptor();

}  // namespace jobd::jobtypes
