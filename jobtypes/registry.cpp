#include "registry.hpp"

#include "exec/exec_descriptor.hpp"
#include "fail/fail_descriptor.hpp"
#include "noop/noop_descriptor.hpp"
#include "sleep/sleep_descriptor.hpp"
#include "sql/sql_descriptor.hpp"

namespace jobd::jobtypes {

const config::HandlerCatalog& handlerCatalog() {
  static const config::HandlerCatalog catalog = {
      execDescriptor(), failDescriptor(), noopDescriptor(), sleepDescriptor(), sqlDescriptor(),
  };
  return catalog;
}

}  // namespace jobd::jobtypes
