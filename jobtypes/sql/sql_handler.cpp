#include "sql_handler.hpp"

#include <cstdio>

#include "core/errors.hpp"
#include "core/job_errors.hpp"

namespace jobd::jobtypes {
namespace {

std::string rollbackState(const pqxx::transaction_rollback& e) {
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr) {
    return "40001";
  }
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) {
    return "40P01";
  }
  if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e) != nullptr) {
    return "40003";
  }
  return "40000";
}

class SqlJob : public runtime::IRunnableJob {
 public:
  SqlJob(const std::string& name, const std::string& statement)
      : name_(name), statement_(statement) {}

  void run(runtime::JobContext& context) override {
    pqxx::work& txn = *context.transaction;
    context.oops_vars["statement"] = statement_;
    try {
      // PREPARE with declared types, so that $1 is jsonb whatever the
      // statement does with it. A prepared statement lives as long as the
      // connection and survives a rollback, so it is made once.
      if (txn.exec_params("SELECT 1 FROM pg_prepared_statements WHERE name = $1", name_).empty()) {
        txn.exec("PREPARE " + name_ + " (jsonb, bigint) AS " + statement_);
      }
      txn.exec("EXECUTE " + name_ + "(" + txn.quote(context.job.json_data.value_or("{}")) +
               "::jsonb, " + std::to_string(context.job.id) + ")");
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::transaction_rollback& e) {
      // libpqxx 6.4 reports SQLSTATE class 40 with its own types, outside
      // sql_error and without the code.
      throw RetryError(errorLine(e.what()), "SqlState" + rollbackState(e));
    } catch (const pqxx::sql_error& e) {
      const std::string& state = e.sqlstate();
      std::string message = errorLine(e.what());
      std::string type = "SqlState" + state;
      if (state.rfind("40", 0) == 0 || state == "JR000") {
        throw RetryError(message, type);
      }
      if (state == "JU000") {
        throw UserError(message, type);
      }
      if (state == "JS000") {
        throw SuspendJob(message, type);
      }
      throw OopsError(type, message);
    }
  }

 private:
  const std::string& name_;
  const std::string& statement_;
};

class SqlSource : public runtime::IJobSource {
 public:
  explicit SqlSource(std::string statement) : statement_(std::move(statement)) {
    // Named after the statement's text, so that a reload that changes it
    // prepares the new one.
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016zx", std::hash<std::string>{}(statement_));
    name_ = std::string("jobd_sql_") + hex;
  }

  bool usesDatabase() const override { return true; }

  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json&) const override {
    return std::make_unique<SqlJob>(name_, statement_);
  }

 private:
  std::string statement_;
  std::string name_;
};

}  // namespace

config::HandlerDescriptor sqlDescriptor() {
  return {
      "sql",
      "runs `statement` in the job's own transaction on the section's dbuser",
      {{"statement", true, "", "one SQL statement; $1 is json_data (jsonb), $2 the job id (bigint)",
        [](const std::string& value) -> std::optional<std::string> {
          if (value.find_first_not_of(" \t") == std::string::npos) {
            return "must not be empty";
          }
          return std::nullopt;
        }}}};
}

std::unique_ptr<runtime::IJobSource> makeSqlSource(const config::SectionConfig& section) {
  return std::make_unique<SqlSource>(section.handler_options.at("statement"));
}

}  // namespace jobd::jobtypes
