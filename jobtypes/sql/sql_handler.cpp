#include "sql_handler.hpp"

#include <cctype>
#include <cstdio>
#include <string_view>

#include "core/errors.hpp"
#include "core/job_errors.hpp"
#include "core/log.hpp"
#include "runtime/progress.hpp"
#include "store/db_error.hpp"

namespace jobd::jobtypes {
namespace {

// The offset just past the end of a quoted string, identifier, dollar-quoted
// string or comment that starts at `at`, or `at` itself when none starts
// there. Unterminated: the end of the text.
std::size_t skipQuotedOrComment(std::string_view sql, std::size_t at) {
  auto endOf = [&](std::string_view close, std::size_t from) {
    std::size_t end = sql.find(close, from);
    return end == std::string_view::npos ? sql.size() : end + close.size();
  };
  char c = sql[at];
  if (c == '\'' && at > 0 && (sql[at - 1] == 'E' || sql[at - 1] == 'e')) {
    // E'...': a backslash escapes the next character, a quote too.
    for (std::size_t i = at + 1; i < sql.size(); ++i) {
      if (sql[i] == '\\') {
        ++i;
      } else if (sql[i] == '\'') {
        return i + 1;
      }
    }
    return sql.size();
  }
  if (c == '\'' || c == '"') {
    // '' and "" inside are doubled quotes: scanning on from the closing
    // quote finds the rest as another quoted run.
    return endOf(std::string_view(&sql[at], 1), at + 1);
  }
  if (sql.compare(at, 2, "--") == 0) {
    return endOf("\n", at + 2);
  }
  if (sql.compare(at, 2, "/*") == 0) {
    return endOf("*/", at + 2);
  }
  if (c == '$') {
    // $tag$ ... $tag$, where tag is empty or an identifier (not $1).
    std::size_t close = sql.find('$', at + 1);
    if (close != std::string_view::npos) {
      std::string_view tag = sql.substr(at, close - at + 1);
      bool identifier = tag.size() == 2 || !std::isdigit(static_cast<unsigned char>(tag[1]));
      for (char t : tag.substr(1, tag.size() - 2)) {
        identifier = identifier && (std::isalnum(static_cast<unsigned char>(t)) || t == '_');
      }
      if (identifier) {
        return endOf(tag, close + 1);
      }
    }
  }
  return at;
}

}  // namespace

bool hasSeveralStatements(std::string_view sql) {
  bool ended = false;  // a `;` outside quotes and comments was seen
  for (std::size_t at = 0; at < sql.size();) {
    std::size_t next = skipQuotedOrComment(sql, at);
    bool comment = sql.compare(at, 2, "--") == 0 || sql.compare(at, 2, "/*") == 0;
    if (next != at) {
      if (ended && !comment) {
        return true;
      }
      at = next;
      continue;
    }
    char c = sql[at];
    if (c == ';') {
      ended = true;
    } else if (ended && !std::isspace(static_cast<unsigned char>(c))) {
      return true;
    }
    ++at;
  }
  return false;
}

namespace {

// While the job's statement runs, the notices jobd.report_progress raises
// on its connection (schema 18) are its reports. Anything else is passed
// on to the connection's earlier handlers.
class ProgressNotices : public pqxx::errorhandler {
 public:
  ProgressNotices(pqxx::connection_base& conn, runtime::JobContext& context)
      : pqxx::errorhandler(conn), context_(context) {}

  bool operator()(const char message[]) noexcept override {
    std::string_view text(message);
    constexpr std::string_view kMark = "jobd_progress ";
    std::size_t at = text.find(kMark);
    if (at == std::string_view::npos) {
      return true;
    }
    nlohmann::json report;
    try {
      report = runtime::parseReportJson(text.substr(at + kMark.size()));
    } catch (const std::exception&) {
      return true;  // someone else's notice that mentions jobd_progress
    }
    if (!report.is_object() || !report.contains("job_id")) {
      return true;
    }
    try {
      if (report.value("job_id", std::int64_t{0}) != context_.job.id) {
        logs::warn("JOB_PROGRESS_REFUSED id={} type={}: a report for job {}; the job goes on",
                   context_.job.id, context_.job.job_type, report["job_id"].dump());
        return false;
      }
      runtime::ProgressUpdate update = runtime::progressFromJson(report);
      if (auto refused = runtime::checkReport(update, context_.job.max_result)) {
        logs::warn("JOB_PROGRESS_REFUSED id={} type={}: {} ({}); the job goes on", context_.job.id,
                   context_.job.job_type, refused->reason, refused->type);
      } else if (context_.progress_sink) {
        context_.progress_sink(std::move(update));
      }
    } catch (const std::exception& e) {
      logs::warn("JOB_PROGRESS_REFUSED id={} type={}: {}; the job goes on", context_.job.id,
                 context_.job.job_type, errorLine(e.what()));
    }
    return false;
  }

 private:
  runtime::JobContext& context_;
};

class SqlJob : public runtime::IRunnableJob {
 public:
  SqlJob(const std::string& name, const std::string& statement, bool column_result)
      : name_(name), statement_(statement), column_result_(column_result) {}

  void run(runtime::JobContext& context) override {
    pqxx::work& txn = *context.transaction;
    context.oops_vars["statement"] = statement_;
    try {
      // PREPARE with declared types, so that $1 is jsonb whatever the
      // statement does with it. A prepared statement lives as long as the
      // connection and survives a rollback, so it is made once; on a
      // connection jobd keeps, it knows which (a round trip less before
      // the statement runs), else it asks the server.
      bool known = context.prepared && context.prepared->count(name_) > 0;
      if (!known &&
          txn.exec_params("SELECT 1 FROM pg_prepared_statements WHERE name = $1", name_).empty()) {
        // Through the extended protocol, which takes one statement only:
        // text after a `;` that check-config missed is an error, never a
        // statement run once per connection outside the job's transaction.
        txn.exec_params("PREPARE " + name_ + " (jsonb, bigint, jsonb) AS " + statement_);
      }
      if (!known && context.prepared) {
        context.prepared->insert(name_);
      }
      ProgressNotices notices(txn.conn(), context);
      std::string checkpoint =
          context.job.checkpoint ? txn.quote(*context.job.checkpoint) + "::jsonb" : "NULL";
      pqxx::result rows =
          txn.exec("EXECUTE " + name_ + "(" + txn.quote(context.job.json_data.value_or("{}")) +
                   "::jsonb, " + std::to_string(context.job.id) + ", " + checkpoint + ")");
      if (column_result_) {
        takeResult(rows, context);
      }
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::failure& e) {
      // An error at COMMIT is sorted the same way, by the JobExecutor.
      std::string state = store::sqlStateOf(e);
      if (state.empty()) {
        throw;
      }
      if (state == "26000" && context.prepared) {
        // Deallocated in this session (DEALLOCATE in the job's own SQL):
        // the next job asks the server, and prepares it again.
        context.prepared->erase(name_);
      }
      throwForSqlState(state, errorLine(e.what()));
    }
  }

  // With `result: column`, the statement's first row's column named
  // `result` (json or jsonb, or text holding JSON) is the job's result,
  // written with its COMPLETED mark in this transaction.
  static void takeResult(const pqxx::result& rows, runtime::JobContext& context) {
    for (pqxx::row::size_type i = 0; i < rows.columns(); ++i) {
      if (std::string(rows.column_name(i)) == "result" && !rows.empty() && !rows[0][i].is_null()) {
        context.result_text = rows[0][i].c_str();
        return;
      }
    }
  }

 private:
  const std::string& name_;
  const std::string& statement_;
  bool column_result_;
};

class SqlSource : public runtime::IJobSource {
 public:
  SqlSource(std::string statement, bool column_result)
      : statement_(std::move(statement)), column_result_(column_result) {
    // Named after the statement's text, so that a reload that changes it
    // prepares the new one.
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016zx", std::hash<std::string>{}(statement_));
    name_ = std::string("jobd_sql3_") + hex;  // three parameters (schema 18)
  }

  bool usesDatabase() const override { return true; }

  std::unique_ptr<runtime::IRunnableJob> makeRunnable(const runtime::ClaimedJob&,
                                                      const nlohmann::json&) const override {
    return std::make_unique<SqlJob>(name_, statement_, column_result_);
  }

 private:
  std::string statement_;
  std::string name_;
  bool column_result_;
};

}  // namespace

config::HandlerDescriptor sqlDescriptor() {
  return {
      "sql",
      "runs `statement` in the job's own transaction on the section's dbuser",
      {{"statement", true, "",
        "one SQL statement; $1 is json_data (jsonb), $2 the job id (bigint), $3 the checkpoint an "
        "earlier attempt saved with jobd.report_progress (jsonb, or NULL)",
        [](const std::string& value) -> std::optional<std::string> {
          if (value.find_first_not_of(" \t") == std::string::npos) {
            return "must not be empty";
          }
          if (hasSeveralStatements(value)) {
            // PREPARE would run everything after the first `;` once per
            // connection, outside the job's transaction.
            return "must be one SQL statement: text follows a ';'";
          }
          return std::nullopt;
        }},
       {"result", false, "none",
        "none, or column: the statement's column named result (JSON) in its first row is the "
        "job's result, written with its COMPLETED mark",
        [](const std::string& value) -> std::optional<std::string> {
          if (value == "none" || value == "column") {
            return std::nullopt;
          }
          return "expected none or column, got '" + value + "'";
        }}}};
}

std::unique_ptr<runtime::IJobSource> makeSqlSource(const config::SectionConfig& section) {
  auto result = section.handler_options.find("result");
  return std::make_unique<SqlSource>(
      section.handler_options.at("statement"),
      result != section.handler_options.end() && result->second == "column");
}

}  // namespace jobd::jobtypes
