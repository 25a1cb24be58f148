// The configuration descriptor of the `noop` handler: does nothing and completes: smoke tests and
// benchmarks.
#pragma once

#include "config/handler_descriptor.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor noopDescriptor();

}  // namespace jobd::jobtypes
