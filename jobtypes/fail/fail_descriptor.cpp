#include "fail_descriptor.hpp"

namespace jobd::jobtypes {

config::HandlerDescriptor failDescriptor() {
  return {"fail",
          "ends as json_data.error says: retry, user, oops or suspend, with json_data.message",
          {}};
}

}  // namespace jobd::jobtypes
