#include "store/runtime_store.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "store/sql_params.hpp"

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
  std::vector<std::int64_t> blocked;
  std::vector<std::string> pauses;
  for (const OutcomeWrite& write : others) {
    result.written.push_back(repo_.writeOutcome(txn, write));
    if (write.block_key && result.written.back()) {
      blocked.push_back(write.outcome->job.id);
      pauses.push_back(toSqlInterval(*write.block_key));
    }
  }
  if (!blocked.empty()) {
    // Rate-limited jobs block their keys (schema 20), all at once, after
    // every other write: the buckets in key order, as claims take them.
    txn.exec_params("SELECT jobd.limit_block($1::bigint[], $2::interval[])", pgArray(blocked),
                    pgTextArray(pauses));
  }
  txn.commit();
  return result;
}

}  // namespace jobd::store
