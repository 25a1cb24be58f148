// The configuration descriptor of the `fail` handler: ends as json_data.error says: retry, user,
// oops or suspend, with json_data.message.
#pragma once

#include "config/handler_descriptor.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor failDescriptor();

}  // namespace jobd::jobtypes
