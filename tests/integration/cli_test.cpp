#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "store/migrations.hpp"
#include "test_database.hpp"

namespace jobd {
namespace {

using ::testing::HasSubstr;
using testing::ProcessResult;
using testing::runJobd;
using testing::TestDatabase;

// Runs jobd against db, with an empty configuration unless one is given.
class CliTest : public ::testing::Test {
 protected:
  ProcessResult jobd(std::vector<std::string> args) {
    args.insert(args.begin(), {"--database", db_.conninfo()});
    return runJobd(args, {{}, {{"JOBD_CONFIG", configPath()}}});
  }

  std::string configPath() {
    if (config_path_.empty()) {
      config_path_ = ::testing::TempDir() + "jobd_cli_" + db_.name() + ".conf";
      std::ofstream(config_path_) << config_text_;
    }
    return config_path_;
  }

  std::string enqueue(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"enqueue"};
    all.insert(all.end(), args.begin(), args.end());
    ProcessResult r = jobd(all);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  TestDatabase db_;
  std::string config_text_ = "[noop]\n";
  std::string config_path_;
};

// Every error is one line on stderr, starting with "jobd: ".
void expectOneLineError(const ProcessResult& r) {
  EXPECT_THAT(r.err, ::testing::StartsWith("jobd: "));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// enqueue prints an id; show --json returns that job with every column.
TEST_F(CliTest, EnqueueThenShowJson) {
  std::string id = enqueue({"noop", "{}"});
  ASSERT_THAT(id, ::testing::MatchesRegex("[0-9]+"));
  ProcessResult shown = jobd({"show", id, "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  nlohmann::json job = nlohmann::json::parse(shown.out);
  EXPECT_EQ(job["id"], std::stoll(id));
  EXPECT_EQ(job["job_type"], "noop");
  EXPECT_EQ(job["status"], 0);
  EXPECT_EQ(job["json_data"], nlohmann::json::object());
  for (const char* column :
       {"priority", "target", "requester", "attempt_count", "max_retries", "scheduled_start",
        "lease_expires", "lease_owner", "date_created", "date_started", "date_finished", "log"}) {
    EXPECT_TRUE(job.contains(column)) << column;
  }
  EXPECT_EQ(job["attempts"], nlohmann::json::array());
  EXPECT_EQ(job["oops"], nlohmann::json::array());

  ProcessResult human = jobd({"show", id});
  EXPECT_EQ(human.exit_code, 0);
  EXPECT_THAT(human.out, HasSubstr("status:          WAITING"));
}

// Every enqueue option lands in its column.
TEST_F(CliTest, EnqueueOptions) {
  std::string id =
      enqueue({"--priority", "-3", "sleep", R"({"ms": 10})", "--at", "2030-06-01T12:00:00+02:00",
               "--target", "mp:9", "--max-retries", "4", "--requester", "alice"});
  nlohmann::json job = nlohmann::json::parse(jobd({"show", id, "--json"}).out);
  EXPECT_EQ(job["priority"], -3);
  EXPECT_EQ(job["json_data"]["ms"], 10);
  EXPECT_EQ(job["scheduled_start"], "2030-06-01T10:00:00+00:00");
  EXPECT_EQ(job["target"], "mp:9");
  EXPECT_EQ(job["max_retries"], 4);
  EXPECT_EQ(job["requester"], "alice");
  EXPECT_EQ(enqueue({"sleep", "--target", "mp:9", "--unique"}), id);
}

// Operator commands follow SPEC §4.3 and say what they did.
TEST_F(CliTest, OperatorCommandsFollowTheTable) {
  std::string id = enqueue({"noop"});
  ProcessResult r = jobd({"suspend", id});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "job " + id + ": WAITING -> SUSPENDED (suspend)\n");
  r = jobd({"retry", id});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "jobd: Transition from Suspended to Waiting is invalid.\n");
  EXPECT_EQ(jobd({"resume", id}).exit_code, 0);
  r = jobd({"cancel", id, "--reason", "not wanted"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "job " + id + ": WAITING -> FAILED (cancel)\n");
  r = jobd({"cancel", id});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "jobd: Transition from Failed to Failed is invalid.\n");
  r = jobd({"resume", id});
  EXPECT_EQ(r.err, "jobd: Transition from Failed to Waiting is invalid.\n");
  r = jobd({"retry", id});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "job " + id + ": FAILED -> WAITING (retry)\n");
  nlohmann::json job = nlohmann::json::parse(jobd({"show", id, "--json"}).out);
  EXPECT_EQ(job["status"], 0);
  EXPECT_EQ(job["log"], "not wanted");
  r = jobd({"retry", "999999"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "jobd: no job with id 999999\n");
}

// Exit statuses of SPEC §2: 64 usage, 65 bad data, 1 runtime failure.
TEST_F(CliTest, ExitStatuses) {
  struct Case {
    std::vector<std::string> args;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, 64, "no command given"},
      {{"frobnicate"}, 64, "unknown command 'frobnicate'"},
      {{"enqueue"}, 64, "wrong number of arguments"},
      {{"enqueue", "noop", "--priority", "x"}, 64, "--priority: expected a whole number"},
      {{"enqueue", "noop", "--priority", "40000"}, 64, "from -32768 to 32767"},
      {{"enqueue", "noop", "--at", "tomorrow"}, 64, "--at: expected an ISO-8601 time"},
      {{"enqueue", "noop", "--delay", "soon"}, 64, "--delay: expected a duration"},
      {{"enqueue", "noop", "--unique"}, 64, "--unique needs --target"},
      {{"enqueue", "noop", "--bogus"}, 64, "unknown option --bogus"},
      {{"enqueue", "noop", "{\"a\":"}, 65, "invalid JSON"},
      {{"enqueue", "noop", "[1, 2]"}, 65, "JSON must be an object"},
      {{"show", "abc"}, 64, "ID: expected a whole number"},
      {{"show", "12345"}, 1, "no job with id 12345"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.args));
    ProcessResult r = jobd(c.args);
    EXPECT_EQ(r.exit_code, c.status);
    EXPECT_THAT(r.err, HasSubstr(c.message));
    expectOneLineError(r);
  }
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobd.job"), "0");
}

// `jobd oops ID`: one OOPS report, in text with its traceback and as JSON;
// an unknown id is a one-line error with exit status 1.
TEST_F(CliTest, OopsShowsOneReport) {
  std::string id = enqueue({"noop"});
  db_.scalar(
      "INSERT INTO jobd.oops (id, reporter, job_id, job_type, attempt, type, value, "
      "traceback, vars, hostname) VALUES ('OOPS-00000000000000ab', 'JOBD-noop', " +
      id +
      ", 'noop', 1, 'FailError', 'it broke', E'line 1\nline 2', "
      "'{\"job_id\": \"" +
      id + "\"}', 'host1')");
  ProcessResult text = jobd({"oops", "OOPS-00000000000000ab"});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("type:     FailError\n"));
  EXPECT_THAT(text.out, HasSubstr("value:    it broke\n"));
  EXPECT_THAT(text.out, HasSubstr("job_id:   " + id + "\n"));
  EXPECT_THAT(text.out, HasSubstr("traceback:\nline 1\nline 2\n"));
  ProcessResult json = jobd({"oops", "OOPS-00000000000000ab", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json report = nlohmann::json::parse(json.out);
  EXPECT_EQ(report["reporter"], "JOBD-noop");
  EXPECT_EQ(report["vars"]["job_id"], id);
  ProcessResult missing = jobd({"oops", "OOPS-ffff"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no OOPS with id OOPS-ffff"));
  expectOneLineError(missing);
}

// An oversized payload is refused with 65 and a clear message; nothing is stored.
TEST_F(CliTest, OversizedPayload) {
  config_text_ = "[jobd]\nmax_payload: 1K\n[noop]\n";
  ProcessResult r = jobd({"enqueue", "noop", "{\"pad\": \"" + std::string(2000, 'x') + "\"}"});
  EXPECT_EQ(r.exit_code, 65);
  EXPECT_THAT(r.err, HasSubstr("over max_payload (1024 bytes)"));
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobd.job"), "0");
}

// check-config: 0 and a summary for the shipped file; 78 and every problem,
// each naming section and key, for a bad one; other commands refuse it too.
TEST_F(CliTest, CheckConfig) {
  ProcessResult ok =
      runJobd({"check-config", "--config", std::string(JOBD_SOURCE_DIR) + "/etc/jobd.conf"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("OK"));

  config_text_ = "[jobd]\nworkers: lots\n[noop]\nconcurency: 2\n[x]\nhandler: nope\n";
  ProcessResult bad = jobd({"check-config"});
  EXPECT_EQ(bad.exit_code, 78);
  EXPECT_THAT(bad.err, HasSubstr(":2: [jobd] workers: expected a whole number"));
  EXPECT_THAT(bad.err, HasSubstr(":4: [noop] concurency: unknown key"));
  EXPECT_THAT(bad.err, HasSubstr(":6: [x] handler: unknown handler 'nope'"));

  ProcessResult refused = jobd({"enqueue", "noop"});
  EXPECT_EQ(refused.exit_code, 78);
  expectOneLineError(refused);
  EXPECT_THAT(refused.err, HasSubstr("[jobd] workers"));

  ProcessResult missing = runJobd({"check-config", "--config", "/nonexistent.conf"});
  EXPECT_EQ(missing.exit_code, 78);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent.conf: cannot read the configuration file"));
}

// status lists counts per type and marks types no section serves.
TEST_F(CliTest, StatusShowsUnhandledTypes) {
  enqueue({"noop"});
  enqueue({"mystery"});
  ProcessResult r = jobd({"status", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json status = nlohmann::json::parse(r.out);
  std::map<std::string, nlohmann::json> types;
  for (const auto& t : status["job_types"]) {
    types[t["job_type"]] = t;
  }
  EXPECT_EQ(types["noop"]["waiting"], 1);
  EXPECT_EQ(types["noop"]["handled"], true);
  EXPECT_EQ(types["mystery"]["handled"], false);
  ProcessResult human = jobd({"status"});
  EXPECT_THAT(human.out, HasSubstr("unhandled"));
}

// Schema 19 from the command line: a job that waits for two others, a
// batch made, filled, shown and closed, and the mistakes each refused
// with one line and the documented exit status.
TEST_F(CliTest, DependenciesAndBatches) {
  std::string a = enqueue({"noop"});
  std::string b = enqueue({"noop"});
  std::string batch = jobd({"batch", "create", "summary", "{\"k\": 1}", "--fire-on", "success"})
                          .out.substr(0, std::string::npos);
  batch = batch.substr(0, batch.find('\n'));
  ASSERT_THAT(batch, ::testing::MatchesRegex("[0-9]+"));
  std::string child = enqueue(
      {"noop", "--depends-on", a + "," + b, "--on-parent-failure", "cancel", "--batch", batch});
  ProcessResult shown = jobd({"show", child});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out,
              HasSubstr("parents:\n  " + a + " WAITING (pending, on failure: cancel)\n  " + b +
                        " WAITING (pending, on failure: cancel)\n"));
  EXPECT_THAT(shown.out, HasSubstr("held:            for 2 parent(s), then runnable at once"));
  EXPECT_THAT(shown.out, HasSubstr("batch:           " + batch));
  EXPECT_THAT(jobd({"show", a}).out, HasSubstr("children:\n  " + child + " WAITING"));

  ProcessResult closed = jobd({"batch", "close", batch});
  EXPECT_EQ(closed.exit_code, 0) << closed.err;
  EXPECT_EQ(closed.out, "closed batch " + batch + "\n");
  ProcessResult listed = jobd({"batch", "show", batch});
  EXPECT_THAT(listed.out, HasSubstr("total:         1\n"));
  EXPECT_THAT(listed.out, HasSubstr("jobs:          1 WAITING=1"));
  nlohmann::json as_json = nlohmann::json::parse(jobd({"batch", "show", batch, "--json"}).out);
  EXPECT_EQ(as_json["fire_on"], "success");
  EXPECT_EQ(as_json["callback_data"], nlohmann::json({{"k", 1}}));

  // An operator's cancel of a parent cancels the child, whose batch then
  // has a failure: no success callback.
  EXPECT_EQ(jobd({"cancel", a}).exit_code, 0);
  EXPECT_THAT(jobd({"show", child}).out, HasSubstr("Cancelled: parent job " + a + " failed"));
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobd.job WHERE job_type = 'summary'"), "0");

  ProcessResult missing = jobd({"enqueue", "noop", "--depends-on", "987654"});
  EXPECT_EQ(missing.exit_code, 65);
  expectOneLineError(missing);
  EXPECT_THAT(missing.err, HasSubstr("no parent job 987654"));
  ProcessResult into_closed = jobd({"enqueue", "noop", "--batch", batch});
  EXPECT_EQ(into_closed.exit_code, 65);
  EXPECT_THAT(into_closed.err, HasSubstr("batch " + batch + " is closed"));
  EXPECT_EQ(jobd({"enqueue", "noop", "--depends-on", "1,x"}).exit_code, 64);
  EXPECT_EQ(jobd({"enqueue", "noop", "--on-parent-failure", "run"}).exit_code, 64);
  EXPECT_EQ(jobd({"enqueue", "noop", "--depends-on", a, "--on-parent-failure", "skip"}).exit_code,
            64);
  EXPECT_EQ(jobd({"batch", "create", "summary", "--fire-on", "never"}).exit_code, 64);
  EXPECT_EQ(jobd({"batch", "create", "summary", "[1]"}).exit_code, 65);
  EXPECT_EQ(jobd({"batch", "show", "987654"}).exit_code, 1);
  EXPECT_EQ(jobd({"batch", "close", "987654"}).exit_code, 1);
  EXPECT_EQ(jobd({"batch", "open"}).exit_code, 64);
  // Nothing was enqueued by the refusals.
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobd.job"), "3");
}

// migrate through the binary: idempotent, and two at once both succeed.
TEST(CliMigrateTest, MigrateTwiceAndConcurrently) {
  TestDatabase db(/*migrate=*/false);
  testing::ProcessOptions options{{}, {{"JOBD_CONFIG", "/dev/null"}}};
  {
    testing::Process a({testing::jobdBinary(), "migrate", "--database", db.conninfo()}, options);
    testing::Process b({testing::jobdBinary(), "migrate", "--database", db.conninfo()}, options);
    ProcessResult ra = a.wait();
    ProcessResult rb = b.wait();
    EXPECT_EQ(ra.exit_code, 0) << ra.err;
    EXPECT_EQ(rb.exit_code, 0) << rb.err;
    EXPECT_THAT(ra.out + rb.out, HasSubstr("migrated schema from version 0"));
    EXPECT_THAT(ra.out + rb.out, HasSubstr("nothing to do"));
  }
  ProcessResult again = runJobd({"migrate", "--database", db.conninfo()}, options);
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_THAT(again.out, HasSubstr("nothing to do"));
  ProcessResult dry = runJobd({"migrate", "--dry-run", "--database", db.conninfo()}, options);
  EXPECT_THAT(dry.out, HasSubstr("nothing to apply"));

  TestDatabase fresh(/*migrate=*/false);
  ProcessResult sql = runJobd({"--database", fresh.conninfo(), "migrate", "--dry-run"}, options);
  EXPECT_EQ(sql.exit_code, 0);
  EXPECT_THAT(sql.out, HasSubstr("CREATE TABLE jobd.job"));
  EXPECT_EQ(fresh.scalar("SELECT to_regclass('jobd.job') IS NULL"), "t");

  // The script runs as it stands under psql (each transactional part in a
  // transaction, CREATE INDEX CONCURRENTLY outside one) and leaves the
  // schema that jobd migrate makes (review of issue 18: before, it was
  // every file back to back, which psql could not run).
  const std::string script = ::testing::TempDir() + "jobd_migrate_" + fresh.name() + ".sql";
  std::ofstream(script) << sql.out;
  ProcessResult psql = testing::runProcess(
      {"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", fresh.conninfo(), "-f", script});
  EXPECT_EQ(psql.exit_code, 0) << psql.err;
  EXPECT_EQ(fresh.scalar("SELECT max(version) FROM jobd.schema_version"),
            db.scalar("SELECT max(version) FROM jobd.schema_version"));
  EXPECT_EQ(fresh.scalar("SELECT count(*) FROM pg_index WHERE indrelid = 'jobd.job'::regclass "
                         "AND indisvalid"),
            db.scalar("SELECT count(*) FROM pg_index WHERE indrelid = 'jobd.job'::regclass"));
  EXPECT_THAT(runJobd({"--database", fresh.conninfo(), "migrate"}, options).out,
              HasSubstr("nothing to do"));
}

// migrate connects to listen_database when one is set: `database` may be
// PgBouncer in transaction pooling, where a migration's session lock and
// its statements outside a transaction would land on any server
// connection. Here `database` cannot be reached at all.
TEST(CliMigrateTest, MigrateUsesListenDatabase) {
  TestDatabase db(/*migrate=*/false);
  const std::string config = ::testing::TempDir() + "jobd_migrate_" + db.name() + ".conf";
  std::ofstream(config) << "[jobd]\ndatabase: host=/nonexistent dbname=nowhere\nlisten_database: "
                        << db.conninfo() << "\n";
  ProcessResult r = runJobd({"--config", config, "migrate"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(db.scalar("SELECT max(version) FROM jobd.schema_version"),
            std::to_string(store::requiredSchemaVersion()));
}

// --help and --version work anywhere on the line and exit 0.
TEST(CliHelpTest, HelpAndVersion) {
  ProcessResult help = runJobd({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("enqueue TYPE [JSON]"));
  ProcessResult version = runJobd({"status", "--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.out, ::testing::StartsWith("jobd "));
}

}  // namespace
}  // namespace jobd
