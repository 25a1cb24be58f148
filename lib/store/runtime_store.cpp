#include "store/runtime_store.hpp"

namespace jobd::store {

PostgresStore::PostgresStore(pqxx::connection_base& conn, std::string owner, bool pooled,
                             std::chrono::milliseconds deadline)
    : conn_(conn), repo_(conn, std::move(owner), pooled, deadline) {}

OutcomeBatchResult PostgresStore::writeOutcomes(
    const std::vector<const runtime::JobOutcome*>& completions,
    const std::vector<OutcomeWrite>& others) {
  OutcomeBatchResult result;
  if (others.empty()) {
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
  result.written.reserve(others.size());
  for (const OutcomeWrite& write : others) {
    result.written.push_back(repo_.writeOutcome(txn, write));
  }
  txn.commit();
  return result;
}

}  // namespace jobd::store
