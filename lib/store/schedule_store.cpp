#include "store/schedule_store.hpp"

#include "core/errors.hpp"
#include "store/db_error.hpp"
#include "store/sql_params.hpp"

namespace jobd::store {
namespace {

// The columns a definition writes, in the order of its parameters $1..$11.
constexpr const char* kColumns =
    "name, job_type, spec, time_zone, json_data, priority, target, max_retries, catch_up, "
    "catch_up_limit, overlap";
constexpr const char* kValues = "$1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11";
constexpr const char* kRedefine =
    "job_type = EXCLUDED.job_type, spec = EXCLUDED.spec, time_zone = EXCLUDED.time_zone, "
    "json_data = EXCLUDED.json_data, priority = EXCLUDED.priority, target = EXCLUDED.target, "
    "max_retries = EXCLUDED.max_retries, catch_up = EXCLUDED.catch_up, "
    "catch_up_limit = EXCLUDED.catch_up_limit, overlap = EXCLUDED.overlap";

pqxx::result writeDefinition(pqxx::transaction_base& txn, const std::string& sql,
                             const ScheduleDefinition& s, const std::string& created_by) {
  return txn.exec_params(sql, s.name, s.job_type, s.spec, s.time_zone, s.json_data, s.priority,
                         nullable(s.target), s.max_retries, s.catch_up, s.catch_up_limit, s.overlap,
                         created_by);
}

FireResult fireResult(const pqxx::row& row) {
  FireResult result;
  if (!row[0].is_null()) {
    result.job_id = row[0].as<std::int64_t>();
  }
  result.outcome = row[1].as<std::string>();
  return result;
}

}  // namespace

const char* const kScheduleRows =
    "SELECT s.name, s.job_type, s.spec, s.time_zone, s.json_data AS payload, s.priority, "
    "s.target, s.max_retries, s.catch_up, s.catch_up_limit, s.overlap, s.from_config, "
    "s.paused, s.created, s.created_by, "
    "s.next_fire, "
    "s.last_fire, s.last_job, CASE j.status WHEN 0 THEN 'WAITING' WHEN 1 THEN 'RUNNING' "
    "WHEN 2 THEN 'COMPLETED' WHEN 3 THEN 'FAILED' WHEN 4 THEN 'SUSPENDED' END "
    "AS last_status, s.missed, s.skipped, s.problem "
    "FROM jobd.schedule AS s LEFT JOIN jobd.job AS j ON j.id = s.last_job";

void ScheduleStore::add(const ScheduleDefinition& s, bool replace, const std::string& created_by) {
  pqxx::work txn(conn_);
  try {
    if (txn.exec_params1("SELECT jsonb_typeof($1::jsonb)", s.json_data)[0].as<std::string>() !=
        "object") {
      throw DataError("the payload must be a JSON object");
    }
  } catch (const pqxx::data_exception& e) {
    throw DataError("invalid JSON: " + errorLine(e.what()));
  }
  std::string sql =
      std::string("INSERT INTO jobd.schedule (") + kColumns + ", created_by) VALUES (" + kValues +
      ", $12) ON CONFLICT (name) DO " +
      (replace ? std::string("UPDATE SET ") + kRedefine + " WHERE NOT jobd.schedule.from_config"
               : std::string("NOTHING")) +
      " RETURNING 1";
  if (writeDefinition(txn, sql, s, created_by).empty()) {
    throw UsageError("schedule '" + s.name + "' exists" +
                     (replace ? std::string(" and comes from a configuration file's section: "
                                            "change it there")
                              : std::string("; --replace redefines it")));
  }
  txn.commit();
}

bool ScheduleStore::remove(const std::string& name) {
  pqxx::work txn(conn_);
  pqxx::result gone =
      txn.exec_params("DELETE FROM jobd.schedule WHERE name = $1 RETURNING from_config", name);
  if (!gone.empty() && gone[0][0].as<bool>()) {
    throw UsageError("schedule '" + name +
                     "' comes from a configuration file's section: remove its schedule key "
                     "there and reload (or `jobd schedule pause` it)");
  }
  txn.commit();
  return !gone.empty();
}

bool ScheduleStore::setPaused(const std::string& name, bool paused) {
  pqxx::work txn(conn_);
  auto rows = txn.exec_params("UPDATE jobd.schedule SET paused = $2 WHERE name = $1 RETURNING 1",
                              name, paused);
  txn.commit();
  return !rows.empty();
}

FireResult ScheduleStore::runNow(const std::string& name, const std::string& made_by) {
  pqxx::work txn(conn_);
  try {
    FireResult result = fireResult(txn.exec_params1(
        "SELECT * FROM jobd.fire_schedule($1, clock_timestamp(), $2, true)", name, made_by));
    txn.commit();
    return result;
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "P0002") {  // no_data_found
      throw NotFoundError("no schedule named '" + name + "'");
    }
    throw;
  }
}

nlohmann::json ScheduleStore::list() {
  pqxx::work txn(conn_);
  txn.exec("SET LOCAL TimeZone = 'UTC'");
  std::string text =
      txn.exec1(std::string("SELECT COALESCE(json_agg(s ORDER BY s.name), '[]')::text "
                            "FROM (") +
                kScheduleRows + ") AS s")[0]
          .as<std::string>();
  txn.commit();
  return nlohmann::json::parse(text);
}

std::vector<DueSchedule> lockDueSchedules(pqxx::transaction_base& txn, int limit,
                                          const std::vector<std::string>& passed_over,
                                          std::int64_t& now) {
  now = txn.exec1("SELECT floor(extract(epoch FROM now()))::bigint")[0].as<std::int64_t>();
  std::vector<DueSchedule> due;
  for (const auto& row : txn.exec_params(
           "SELECT name, spec, time_zone, catch_up, catch_up_limit, overlap, "
           "floor(extract(epoch FROM fired_through))::bigint FROM jobd.schedule "
           "WHERE NOT paused AND problem IS NULL AND (next_fire IS NULL OR next_fire <= now()) "
           "AND name <> ALL ($2::text[]) "
           "ORDER BY next_fire NULLS FIRST, name LIMIT $1 FOR UPDATE SKIP LOCKED",
           limit, pgTextArray(passed_over))) {
    due.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                   row[3].as<std::string>(), row[4].as<int>(), row[5].as<std::string>(),
                   row[6].as<std::int64_t>()});
  }
  return due;
}

FireResult fireSchedule(pqxx::transaction_base& txn, const std::string& name,
                        std::int64_t fire_time, const std::string& made_by) {
  return fireResult(txn.exec_params1("SELECT * FROM jobd.fire_schedule($1, to_timestamp($2), $3)",
                                     name, fire_time, made_by));
}

void recordPass(pqxx::transaction_base& txn, const std::string& name, std::int64_t fired_through,
                std::optional<std::int64_t> next_fire, std::uint64_t missed,
                std::uint64_t skipped) {
  std::optional<std::string> next;
  if (next_fire) {
    next = std::to_string(*next_fire);
  }
  txn.exec_params(
      "UPDATE jobd.schedule SET fired_through = GREATEST(fired_through, to_timestamp($2)), "
      "next_fire = COALESCE(to_timestamp($3::bigint), 'infinity'), missed = missed + $4, "
      "skipped = skipped + $5 WHERE name = $1",
      name, fired_through, nullable(next), static_cast<std::int64_t>(missed),
      static_cast<std::int64_t>(skipped));
}

void postpone(pqxx::transaction_base& txn, const std::string& name, int seconds) {
  txn.exec_params(
      "UPDATE jobd.schedule SET next_fire = clock_timestamp() + make_interval(secs => $2) "
      "WHERE name = $1",
      name, seconds);
}

void recordProblem(pqxx::transaction_base& txn, const std::string& name,
                   const std::string& problem) {
  txn.exec_params("UPDATE jobd.schedule SET problem = $2, next_fire = 'infinity' WHERE name = $1",
                  name, problem);
}

std::optional<double> secondsToNextTick(pqxx::transaction_base& txn,
                                        const std::vector<std::string>& passed_over) {
  // From the clock now, not the transaction's start: the pass took time.
  auto row = txn.exec_params1(
      "SELECT CASE WHEN bool_or(next_fire IS NULL) THEN 0 "
      "ELSE extract(epoch FROM min(next_fire) - clock_timestamp())::float8 END "
      "FROM jobd.schedule WHERE NOT paused AND problem IS NULL "
      "AND (next_fire IS NULL OR next_fire <> 'infinity') AND name <> ALL ($1::text[])",
      pgTextArray(passed_over));
  if (row[0].is_null()) {
    return std::nullopt;
  }
  return row[0].as<double>();
}

std::vector<std::string> syncConfigSchedules(pqxx::transaction_base& txn,
                                             const std::vector<ScheduleDefinition>& configured,
                                             const std::string& created_by) {
  std::vector<std::string> taken;
  std::string sql =
      std::string("INSERT INTO jobd.schedule (") + kColumns +
      ", created_by, from_config) VALUES (" + kValues +
      ", $12, true) ON CONFLICT (name) DO UPDATE SET " + kRedefine +
      " WHERE jobd.schedule.from_config AND (jobd.schedule.job_type, jobd.schedule.spec, "
      "jobd.schedule.time_zone, jobd.schedule.json_data, jobd.schedule.priority, "
      "jobd.schedule.target, jobd.schedule.max_retries, jobd.schedule.catch_up, "
      "jobd.schedule.catch_up_limit, jobd.schedule.overlap) IS DISTINCT FROM (EXCLUDED.job_type, "
      "EXCLUDED.spec, EXCLUDED.time_zone, EXCLUDED.json_data, EXCLUDED.priority, "
      "EXCLUDED.target, EXCLUDED.max_retries, EXCLUDED.catch_up, EXCLUDED.catch_up_limit, "
      "EXCLUDED.overlap) RETURNING 1";
  for (const ScheduleDefinition& s : configured) {
    if (writeDefinition(txn, sql, s, created_by).empty() &&
        !txn.exec_params1("SELECT from_config FROM jobd.schedule WHERE name = $1", s.name)[0]
             .as<bool>()) {
      taken.push_back(s.name);
    }
  }
  std::vector<std::string> names;
  names.reserve(configured.size());
  for (const ScheduleDefinition& s : configured) {
    names.push_back(s.name);
  }
  txn.exec_params("DELETE FROM jobd.schedule WHERE from_config AND name <> ALL ($1::text[])",
                  pgTextArray(names));
  return taken;
}

}  // namespace jobd::store
