#include "noop_descriptor.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor noopDescriptor() {
  return {"noop", "does nothing and completes: smoke tests and benchmarks", {}};
}

}  // namespace jobd::jobtypes
