// The registry of compiled-in handlers (SPEC §5). Lists every handler
// explicitly, so that what a jobd binary can run is read in one place.
// Config validates sections against handlerCatalog(); built once, read from
// any thread.
#pragma once

#include "config/handler_descriptor.hpp"

namespace jobd::jobtypes {

const config::HandlerCatalog& handlerCatalog();

}  // namespace jobd::jobtypes
