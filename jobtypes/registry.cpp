#include "registry.hpp"

#include <functional>

#include "core/errors.hpp"
#include "exec/exec_handler.hpp"
#include "fail/fail_handler.hpp"
#include "noop/noop_handler.hpp"
#include "sleep/sleep_handler.hpp"
#include "sql/sql_handler.hpp"

namespace jobd::jobtypes {
namespace {

using SourceFactory =
    std::function<std::unique_ptr<runtime::IJobSource>(const config::SectionConfig&)>;

struct Entry {
  config::HandlerDescriptor descriptor;
  SourceFactory make;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> all = {
      {execDescriptor(), makeExecSource}, {failDescriptor(), makeFailSource},
      {noopDescriptor(), makeNoopSource}, {sleepDescriptor(), makeSleepSource},
      {sqlDescriptor(), makeSqlSource},
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

std::unique_ptr<runtime::IJobSource> makeJobSource(const config::SectionConfig& section) {
  for (const Entry& e : entries()) {
    if (e.descriptor.name == section.handler) {
      return e.make(section);
    }
  }
  throw ConfigError("[" + section.name + "] handler: unknown handler '" + section.handler + "'");
}

}  // namespace jobd::jobtypes
