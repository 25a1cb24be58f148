#include "registry.hpp"

#include <functional>

#include "core/errors.hpp"
#include "email/email_handler.hpp"
#include "exec/exec_handler.hpp"
#include "fail/fail_handler.hpp"
#include "merge_proposal_diff/merge_proposal_diff_handler.hpp"
#include "noop/noop_handler.hpp"
#include "person_merge/person_merge_handler.hpp"
#include "python/python_handler.hpp"
#include "sleep/sleep_handler.hpp"
#include "sql/sql_handler.hpp"

namespace jobd::jobtypes {
namespace {

using SourceFactory = std::function<std::unique_ptr<runtime::IJobSource>(
    const config::SectionConfig&, const config::MailSettings&)>;

// For the handlers that do not send mail.
template <std::unique_ptr<runtime::IJobSource> (*Make)(const config::SectionConfig&)>
std::unique_ptr<runtime::IJobSource> withoutMail(const config::SectionConfig& section,
                                                 const config::MailSettings&) {
  return Make(section);
}

struct Entry {
  config::HandlerDescriptor descriptor;
  SourceFactory make;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> all = {
      {emailDescriptor(), makeEmailSource},
      {execDescriptor(), withoutMail<makeExecSource>},
      {failDescriptor(), withoutMail<makeFailSource>},
      {mergeProposalDiffDescriptor(), withoutMail<makeMergeProposalDiffSource>},
      {noopDescriptor(), withoutMail<makeNoopSource>},
      {personMergeDescriptor(), withoutMail<makePersonMergeSource>},
      {pythonDescriptor(), withoutMail<makePythonSource>},
      {sleepDescriptor(), withoutMail<makeSleepSource>},
      {sqlDescriptor(), withoutMail<makeSqlSource>},
  };
  return all;
}

}  // namespace

const config::HandlerCatalog& handlerCatalog() {
  static const config::HandlerCatalog catalog = [] {
    config::HandlerCatalog out;
    for (const Entry& e : entries()) {
      out.push_back(e.descriptor);
    }
    return out;
  }();
  return catalog;
}

std::unique_ptr<runtime::IJobSource> makeJobSource(const config::SectionConfig& section,
                                                   const config::MailSettings& mail) {
  for (const Entry& e : entries()) {
    if (e.descriptor.name == section.handler) {
      return e.make(section, mail);
    }
  }
  throw ConfigError("[" + section.name + "] handler: unknown handler '" + section.handler + "'");
}

}  // namespace jobd::jobtypes
