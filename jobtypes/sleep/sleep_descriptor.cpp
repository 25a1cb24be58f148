#include "sleep_descriptor.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor sleepDescriptor() {
  return {"sleep", "sleeps for json_data.ms milliseconds, then completes", {}};
}

}  // namespace jobd::jobtypes
