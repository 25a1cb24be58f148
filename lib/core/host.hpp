// This machine's host name, for lease owners, OOPS reports and Message-IDs;
// "localhost" when it cannot be read.
#pragma once

#include <string>

namespace jobd {

std::string hostName();

}  // namespace jobd
