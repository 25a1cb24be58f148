// The configuration descriptor of the `sleep` handler: sleeps for json_data.ms milliseconds, then
// completes.
#pragma once

#include "config/handler_descriptor.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor sleepDescriptor();

}  // namespace jobd::jobtypes
