#include "store/runtime_store.hpp"

#include <algorithm>

namespace jobd::store {

PostgresStore::PostgresStore(pqxx::connection_base& conn, std::string owner, bool pooled,
                             std::chrono::milliseconds deadline)
    : conn_(conn), repo_(conn, std::move(owner), pooled, deadline) {}

OutcomeBatchResult PostgresStore::writeOutcomes(
    const std::vector<const runtime::JobOutcome*>& completions,
    const std::vector<OutcomeWrite>& others) {
  OutcomeBatchResult result;
  // Results are written with their COMPLETED marks, in one transaction.
  const bool results =
      std::any_of(completions.begin(), completions.end(),
                  [](const runtime::JobOutcome* o) { return o->result.has_value(); });
  if (others.empty() && !results) {
    if (!completions.empty()) {
      pqxx::nontransaction txn(conn_, "completions");
      result.lost = repo_.completeMany(txn, completions);
    }
    return result;
  }
  pqxx::work txn(conn_, "outcomes");
  repo_.limit(txn);
  if (!completions.empty()) {
    result.lost = repo_.completeMany(txn, completions);
  }
  if (results) {
    std::vector<const runtime::JobOutcome*> completed;
    for (const runtime::JobOutcome* o : completions) {
      if (std::find(result.lost.begin(), result.lost.end(), o->job.id) == result.lost.end()) {
        completed.push_back(o);
      }
    }
    repo_.writeResults(txn, completed);
  }
  result.written.reserve(others.size());
  for (const OutcomeWrite& write : others) {
    result.written.push_back(repo_.writeOutcome(txn, write));
  }
  txn.commit();
  return result;
}

}  // namespace jobd::store
