// fileOops: writes an OOPS report as JSON to `<oops_dir>/<YYYY-MM-DD>/<id>`
// (SPEC §3; the day folder is UTC), for every OOPS whatever raised it.
// Called on the database threads after the report's row is written; a file
// that cannot be written is logged (OOPS_FILE_FAILED), never thrown.
#pragma once

#include <string>

#include "core/oops.hpp"

namespace jobd::runtime {

// Does nothing when oops_dir is empty.
void fileOops(const std::string& oops_dir, const OopsReport& oops);

}  // namespace jobd::runtime
