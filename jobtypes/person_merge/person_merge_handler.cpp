#include "person_merge_handler.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/job_errors.hpp"
#include "core/log.hpp"

namespace jobd::jobtypes {
namespace {

// Single-column foreign keys that reference table(key): the referencing
// table and column. Multi-column keys cannot point at one row's key alone.
constexpr const char* kReferences = R"sql(
SELECT c.conrelid::regclass::text, a.attname, a.attnum
  FROM pg_constraint AS c
  JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
  JOIN pg_attribute AS r ON r.attrelid = c.confrelid AND r.attnum = c.confkey[1]
 WHERE c.contype = 'f' AND c.confrelid = $1::regclass AND r.attname = $2
   AND cardinality(c.conkey) = 1
 ORDER BY 1, 2
)sql";

// The other columns of each unique index (or constraint) of a table that
// includes the column; partial and expression indexes are left alone.
constexpr const char* kUniqueWith = R"sql(
SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey) AS k(attnum)
               JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE k.attnum <> $2
              ORDER BY a.attname)::text[]
  FROM pg_index AS i
 WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL
   AND i.indexprs IS NULL AND $2 = ANY (i.indkey)
)sql";

std::string idOf(const nlohmann::json& data, const char* field) {
  auto it = data.find(field);
  if (it == data.end() || !(it->is_number_integer() || it->is_string())) {
    throw UserError(std::string("person_merge: json_data.") + field +
                    " must be the key of a row (a number or a string)");
  }
  return it->is_string() ? it->get<std::string>() : std::to_string(it->get<std::int64_t>());
}

std::vector<std::string> textArray(const pqxx::field& field) {
  std::vector<std::string> out;
  pqxx::array_parser parser = field.as_array();
  for (auto item = parser.get_next(); item.first != pqxx::array_parser::done;
       item = parser.get_next()) {
    if (item.first == pqxx::array_parser::string_value) {
      out.push_back(item.second);
    }
  }
  return out;
}

struct Settings {
  std::string table;
  std::string key;
  std::string merged_column;
};

class PersonMergeJob : public runtime::IRunnableJob {
 public:
  PersonMergeJob(const Settings& settings, std::string from, std::string to)
      : settings_(settings), from_(std::move(from)), to_(std::move(to)) {}

  void run(runtime::JobContext& context) override {
    pqxx::work& txn = *context.transaction;
    context.oops_vars["from"] = from_;
    context.oops_vars["to"] = to_;
    if (from_ == to_) {
      throw UserError("person_merge: cannot merge row " + from_ + " into itself");
    }
    pqxx::row found = txn.exec_params1("SELECT to_regclass($1)::text", settings_.table);
    if (found[0].is_null()) {
      throw OopsError("PersonMergeConfig", "no table " + settings_.table);
    }
    const std::string table = found[0].c_str();  // quoted as needed
    const std::string key = txn.quote_name(settings_.key);
    const std::string merged = txn.quote_name(settings_.merged_column);
    // Both rows locked, in key order, so that two merges cannot deadlock.
    pqxx::result rows =
        txn.exec_params(fmt::format("SELECT {0}::text, {1}::text FROM {2} WHERE {0} IN ($1, $2) "
                                    "ORDER BY {0} FOR UPDATE",
                                    key, merged, table),
                        from_, to_);
    std::map<std::string, std::optional<std::string>> state;
    for (const pqxx::row& row : rows) {
      state[row[0].c_str()] =
          row[1].is_null() ? std::nullopt : std::optional<std::string>(row[1].c_str());
    }
    for (const std::string& id : {from_, to_}) {
      if (state.count(id) == 0) {
        throw UserError("person_merge: no " + settings_.table + " row with " + settings_.key + " " +
                        id);
      }
      if (state[id]) {
        throw UserError("person_merge: " + settings_.table + " " + id + " is already merged into " +
                        *state[id]);
      }
    }
    std::size_t repointed = 0;
    std::size_t removed = 0;
    for (const pqxx::row& ref : txn.exec_params(kReferences, table, settings_.key)) {
      const std::string child = ref[0].c_str();
      const std::string column = txn.quote_name(ref[1].c_str());
      // Rows of the duplicate that would collide with the target's under a
      // unique constraint go first: the target's row stands for both.
      for (const pqxx::row& unique : txn.exec_params(kUniqueWith, child, ref[2].as<int>())) {
        std::string remove = fmt::format(
            "DELETE FROM {0} AS d WHERE d.{1} = $1 AND EXISTS (SELECT 1 FROM {0} AS k WHERE k.{1} "
            "= $2",
            child, column);
        for (const std::string& other : textArray(unique[0])) {
          remove += fmt::format(" AND k.{0} = d.{0}", txn.quote_name(other));
        }
        remove += ")";
        removed += txn.exec_params0(remove, from_, to_).affected_rows();
      }
      repointed +=
          txn.exec_params0(fmt::format("UPDATE {0} SET {1} = $2 WHERE {1} = $1", child, column),
                           from_, to_)
              .affected_rows();
    }
    txn.exec_params0(fmt::format("UPDATE {} SET {} = $2 WHERE {} = $1", table, merged, key), from_,
                     to_);
    logs::info("PERSON_MERGE {} {} into {}: {} rows re-pointed, {} colliding rows removed", table,
               from_, to_, repointed, removed);
  }

 private:
  const Settings& settings_;
  std::string from_;
  std::string to_;
};

class PersonMergeSource : public runtime::IJobSource {
 public:
  explicit PersonMergeSource(Settings settings) : settings_(std::move(settings)) {}

  bool usesDatabase() const override { return true; }

  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json& data) const override {
    return std::make_unique<PersonMergeJob>(settings_, idOf(data, "from"), idOf(data, "to"));
  }

  std::string operationDescription(const runtime::ClaimedJob& job) const override {
    return "merging " + settings_.table + " records (job " + std::to_string(job.id) + ")";
  }

 private:
  Settings settings_;
};

std::string optionOr(const config::SectionConfig& section, const std::string& key,
                     const std::string& fallback) {
  auto it = section.handler_options.find(key);
  return it == section.handler_options.end() ? fallback : it->second;
}

std::optional<std::string> nonEmpty(const std::string& value) {
  if (value.find_first_not_of(" \t") == std::string::npos) {
    return "must not be empty";
  }
  return std::nullopt;
}

}  // namespace

config::HandlerDescriptor personMergeDescriptor() {
  return {
      "person_merge",
      "merges json_data.from into json_data.to in `table`, re-pointing every foreign key",
      {{"table", false, "person", "the table whose rows are merged (may name a schema)", nonEmpty},
       {"key", false, "id", "its key column, which the foreign keys reference", nonEmpty},
       {"merged_column", false, "merged_into", "the column that marks a row merged into another",
        nonEmpty}}};
}

std::unique_ptr<runtime::IJobSource> makePersonMergeSource(const config::SectionConfig& section) {
  return std::make_unique<PersonMergeSource>(
      Settings{optionOr(section, "table", "person"), optionOr(section, "key", "id"),
               optionOr(section, "merged_column", "merged_into")});
}

}  // namespace jobd::jobtypes
