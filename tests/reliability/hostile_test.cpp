// Hostile jobs, roles and networks (RELIABILITY.md, scenarios 6, 8, 9 and
// 10): poison, hung and memory-hog jobs among the standard load; a
// section's job, on its dbuser, trying to write what is not its own; a
// canary password that must never leave the connection settings, even
// through the errors that faults provoke; a server certificate for the
// wrong name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "harness.hpp"
#include "http_client.hpp"
#include "notify_socket.hpp"

namespace jobd::reliability {
namespace {

using ::testing::AnyOf;
using testing::Daemon;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TestDatabase;
using testing::waitForValue;

// Scenario 6: among the standard load, jobs that crash their process
// runner (poison), that ignore their cancellation and sleep far past their
// timeout (hung), and that map memory past memory_limit (hog). The bad
// ones each end FAILED with their OOPS; every invariant of the load holds;
// the daemon neither dies nor stops claiming.
TEST(ReliabilityHostile, PoisonHungAndMemoryHogJobs) {
  TestDatabase db;
  Load load(db);
  Fleet fleet(
      db,
      "[jobd]\nworkers: 8\npoll_interval: 1s\nrescue_interval: 1s\n" + load.sections() +
          "[bad]\nhandler: fail\nrunner: process\ndrills: true\nconcurrency: 2\nmemory_limit: "
          "256M\n"
          "max_retries: 1\nretry_delay: 100ms\n"
          "[hung]\nhandler: sleep\nrunner: process\ndrills: true\nconcurrency: 2\ntimeout: 2s\n"
          "kill_grace: 1s\n",
      1);
  ASSERT_TRUE(fleet.waitAllReady());
  int each = profile().full ? 50 : 10;
  db.scalar("SELECT count(jobd.enqueue('bad', '{\"error\": \"crash\"}')) FROM generate_series(1, " +
            std::to_string(each) + ")");
  db.scalar(
      "SELECT count(jobd.enqueue('bad', '{\"error\": \"memory\", \"bytes\": 4294967296}')) FROM "
      "generate_series(1, " +
      std::to_string(each) + ")");
  db.scalar(
      "SELECT count(jobd.enqueue('hung', '{\"ms\": 600000, \"ignore_cancel\": true}')) FROM "
      "generate_series(1, " +
      std::to_string(each / 2) + ")");
  Feeder feeder(load, profile().full ? 4000 : 1000, 200);
  feeder.finish();
  Invariants found = settleAndCheck(load);
  std::string bad_done = waitForValue(
      db, "SELECT count(*) FROM jobd.job WHERE job_type IN ('bad', 'hung') AND status <> 3", "0",
      std::chrono::seconds(300));
  EXPECT_EQ(bad_done, "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job j WHERE job_type = 'bad' AND NOT EXISTS "
                      "(SELECT 1 FROM jobd.oops o WHERE o.job_id = j.id AND o.type IN "
                      "('Signal11', 'std::bad_alloc'))"),
            "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job j WHERE job_type = 'hung' AND NOT EXISTS "
                      "(SELECT 1 FROM jobd.oops o WHERE o.job_id = j.id AND o.type = "
                      "'TimeoutError')"),
            "0");
  EXPECT_TRUE(fleet.allAlive()) << fleet.logs();
  fleet.stopAll();
  expectHolds(found);
  nlohmann::json figures = loadFigures(db);
  figures["poison"] = each;
  figures["memory_hogs"] = each;
  figures["hung"] = each / 2;
  figures["crashed_attempts"] =
      std::stoll(db.scalar("SELECT count(*) FROM jobd.job_attempt WHERE outcome = 'crashed'"));
  figures["invariants"] = found.toJson();
  report("poison, hung and memory-hog jobs", figures);
}

// Roles of one test, dropped after its database (declare before it).
// Login roles for dbusers, each with a password in a pgpass file of its
// own (PGPASSFILE for the daemon): a dbuser's connection never carries the
// daemon's password (docs: README, "Roles").
struct Roles {
  explicit Roles(std::vector<std::string> names) : names(std::move(names)) {
    pgpass = ::testing::TempDir() + "jobd_roles_pgpass_" + std::to_string(::getpid());
    std::ofstream out(pgpass);
    auto conn = std::make_unique<pqxx::connection>("");
    for (const std::string& name : this->names) {
      std::string password = "pw-" + name;
      pqxx::nontransaction(*conn).exec("CREATE ROLE " + name + " LOGIN PASSWORD " +
                                       conn->quote(password));
      out << "*:*:*:" << name << ":" << password << "\n";
    }
    out.close();
    std::filesystem::permissions(
        pgpass, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  ~Roles() {
    auto conn = std::make_unique<pqxx::connection>("");
    for (const std::string& name : names) {
      pqxx::nontransaction(*conn).exec("DROP ROLE IF EXISTS " + name);
    }
    std::filesystem::remove(pgpass);
  }
  std::vector<std::string> names;
  std::string pgpass;
};

// Scenario 8: least privilege. Section a runs as role a, which may insert
// into a_items and mark its job COMPLETED (jobd.complete_in_job_transaction)
// and nothing more. Its jobs try to write b_items, change, insert and
// delete job rows, complete another job, drop a table and take another
// role: each fails cleanly (FAILED with an OOPS naming the refusal), no
// write lands, and the daemon goes on running a's honest jobs.
TEST(ReliabilityHostile, LeastPrivilege) {
  std::string suffix = std::to_string(::getpid());
  Roles roles({"jobd_a_" + suffix, "jobd_b_" + suffix});
  const std::string& a = roles.names[0];
  const std::string& b = roles.names[1];
  TestDatabase db;
  db.scalar(
      "DO $$ BEGIN "
      "CREATE TABLE a_items (v text); CREATE TABLE b_items (v text); "
      "CREATE FUNCTION run_sql(q jsonb) RETURNS void LANGUAGE plpgsql AS "
      "$f$ BEGIN EXECUTE q->>'sql'; END $f$; "
      "END $$");
  for (const std::string& role : {a, b}) {
    std::string grants = "GRANT USAGE ON SCHEMA jobd TO ";
    grants += role;
    grants +=
        "; GRANT EXECUTE ON FUNCTION jobd.complete_in_job_transaction(bigint, integer, text) TO ";
    grants += role;
    grants += role == a ? "; GRANT INSERT ON a_items TO " : "; GRANT INSERT ON b_items TO ";
    grants += role;
    db.scalar("DO $$ BEGIN " + grants + "; END $$");
  }
  Daemon daemon(db,
                "[jobd]\npoll_interval: 1s\n[a]\nhandler: sql\ndbuser: " + a +
                    "\nstatement: SELECT run_sql($1)\nconcurrency: 2\n"
                    "[b]\nhandler: sql\ndbuser: " +
                    b + "\nstatement: SELECT run_sql($1)\n",
                {}, {{"PGPASSFILE", roles.pgpass}});
  ASSERT_TRUE(daemon.waitReady());
  std::string victim = db.scalar(
      "SELECT jobd.enqueue('b', '{\"sql\": \"INSERT INTO b_items VALUES (1)\"}', "
      "scheduled_start => now() + interval '1 day')");
  const std::vector<std::string> attacks = {
      "INSERT INTO b_items VALUES ('from a')",
      "UPDATE jobd.job SET json_data = '{}' WHERE id = " + victim,
      "UPDATE jobd.job SET status = 2",
      "DELETE FROM jobd.job",
      "INSERT INTO jobd.job (job_type) VALUES ('b')",
      "SELECT jobd.enqueue('b')",
      "SELECT count(*) FROM jobd.job",
      "SELECT count(*) FROM jobd.oops",
      "DROP TABLE b_items",
      "SET ROLE " + b,
      "SET ROLE postgres",
      "CREATE TABLE jobd.mine (v int)",
      "UPDATE jobd.schema_version SET version = 99",
  };
  std::vector<std::string> ids;
  ids.reserve(attacks.size());
  for (const std::string& sql : attacks) {
    ids.push_back(db.scalar("SELECT jobd.enqueue('a', jsonb_build_object('sql', " +
                            db.connect()->quote(sql) + "))"));
  }
  std::string honest = db.scalar(
      "SELECT jobd.enqueue('a', '{\"sql\": \"INSERT INTO a_items VALUES (''honest'')\"}')");
  std::string all = "(" + honest;
  for (const std::string& id : ids) {
    all += ", " + id;
  }
  all += ")";
  EXPECT_EQ(
      waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status IN (2, 3) AND id IN " + all,
                   std::to_string(ids.size() + 1)),
      std::to_string(ids.size() + 1));
  EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + honest), "2");
  EXPECT_EQ(db.scalar("SELECT string_agg(v, ',') FROM a_items"), "honest");
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(db.scalar("SELECT status FROM jobd.job WHERE id = " + ids[i]), "3") << attacks[i];
    EXPECT_THAT(db.scalar("SELECT value FROM jobd.oops WHERE job_id = " + ids[i]),
                AnyOf(HasSubstr("permission denied"), HasSubstr("must be owner")))
        << attacks[i];
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM b_items"), "0");
  EXPECT_EQ(db.scalar("SELECT status || ' ' || json_data::text FROM jobd.job WHERE id = " + victim),
            "0 {\"sql\": \"INSERT INTO b_items VALUES (1)\"}");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job"), std::to_string(ids.size() + 2));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.schema_version WHERE version = 99"), "0");
  testing::ProcessResult stopped = daemon.stop();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  report("least privilege", {{"refused", attacks.size()}, {"honest_completed", 1}});
}

// Scenario 9: secrets. The daemon's password is a canary; faults make it
// log connection errors (all its backends terminated, three times), jobs
// fail with OOPS reports, an operator runs the CLI with a wrong port. The canary appears in no log
// line, OOPS, STATUS=, metric, page or CLI message.
TEST(ReliabilityHostile, CanaryPasswordNeverLeaks) {
  const std::string canary = "Canary-" + std::to_string(seed() % 1000000007ULL) + "-Pw";
  TestDatabase db;
  std::string role = "jobd_canary_" + std::to_string(::getpid());
  db.scalar("CREATE ROLE " + role + " LOGIN SUPERUSER PASSWORD '" + canary + "'");
  testing::NotifySocket notify;
  std::string conninfo = db.conninfo() + " user=" + role + " password=" + canary;
  std::string config_path = ::testing::TempDir() + "jobd_canary_" + db.name() + ".conf";
  std::ofstream(config_path)
      << "[jobd]\ndatabase: " << conninfo
      << "\nmetrics_listen: 127.0.0.1:0\npoll_interval: 1s\n[fail]\nmax_retries: 0\n";
  testing::Process daemon({testing::jobdBinary(), "--config", config_path, "serve"},
                          {"", notify.env()});
  ASSERT_TRUE(daemon.waitForOutput("DAEMON_READY")) << daemon.errSoFar();
  std::string base = testing::baseUrl(daemon);
  for (int round = 0; round < 3; ++round) {
    db.scalar("SELECT jobd.enqueue('fail', '{\"error\": \"oops\"}')");
    db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = '" +
              role + "'");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_EQ(waitForValue(db, "SELECT count(*) FROM jobd.job WHERE status = 3", "3"), "3");
  ASSERT_GE(notify.waitFor("STATUS=", 0, std::chrono::seconds(15)), 0);
  std::string pages = testing::httpGet(base + "/").body + testing::httpGet(base + "/metrics").body;
  testing::ProcessResult cli =
      testing::runProcess({testing::jobdBinary(), "--database", conninfo + " port=1", "status"});
  EXPECT_NE(cli.exit_code, 0);
  daemon.signal(SIGTERM);
  testing::ProcessResult r = daemon.wait(std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("DATABASE_DOWN"));
  EXPECT_THAT(r.err, HasSubstr("password=********"));
  // Where the canary could show, and how many of them carry it.
  std::vector<std::pair<std::string, std::string>> places = {
      {"log", r.err}, {"pages and metrics", pages}, {"CLI", cli.out + cli.err}};
  for (const auto& m : notify.messages()) {
    places.emplace_back("sd_notify", m.text);
  }
  places.emplace_back("OOPS", db.scalar("SELECT coalesce(string_agg(to_jsonb(oops)::text, ''), '') "
                                        "FROM jobd.oops"));
  places.emplace_back("attempts",
                      db.scalar("SELECT coalesce(string_agg(to_jsonb(a)::text, ''), '') FROM "
                                "jobd.job_attempt a"));
  int leaks = 0;
  for (const auto& [where, text] : places) {
    bool leaked = text.find(canary) != std::string::npos;
    EXPECT_FALSE(leaked) << "the canary is in the " << where;
    leaks += leaked ? 1 : 0;
  }
  db.scalar("DROP ROLE " + role);
  report("secrets",
         {{"places_checked", places.size()}, {"log_bytes", r.err.size()}, {"leaks", leaks}});
}

// Runs SQL that cannot run in a transaction block (ALTER SYSTEM).
void outsideTransaction(const TestDatabase& db, const std::string& sql) {
  auto conn = db.connect();
  pqxx::nontransaction(*conn).exec(sql);
}

// The cluster serves TLS with the given certificate while it lives; the
// settings before it come back at its end.
struct ServerTls {
  ServerTls(const TestDatabase& db, const std::string& cert, const std::string& key) : db(db) {
    outsideTransaction(db, "ALTER SYSTEM SET ssl_cert_file = '" + cert + "'");
    outsideTransaction(db, "ALTER SYSTEM SET ssl_key_file = '" + key + "'");
    outsideTransaction(db, "ALTER SYSTEM SET ssl = on");
    db.scalar("SELECT pg_reload_conf()");
  }
  ~ServerTls() {
    for (const char* setting : {"ssl", "ssl_cert_file", "ssl_key_file"}) {
      outsideTransaction(db, std::string("ALTER SYSTEM RESET ") + setting);
    }
    db.scalar("SELECT pg_reload_conf()");
  }
  const TestDatabase& db;
};

// Scenario 10: TLS. The server presents a certificate for wrong.example,
// signed by a CA the client is given. sslmode=verify-full to host
// localhost is refused, by the CLI and by the daemon, with libpq's message
// naming the mismatch; the same CA with verify-ca, or verify-full to the
// certificate's name, connects (TLS is on, and only the name is wrong).
TEST(ReliabilityHostile, TlsVerifyFullRefusesTheWrongName) {
  TestDatabase db;
  std::string dir = ::testing::TempDir() + "jobd_tls_" + db.name();
  ::mkdir(dir.c_str(), 0755);
  auto openssl = [](std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    testing::ProcessResult r = testing::runProcess(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
           "/CN=jobd-test-ca", "-keyout", dir + "/ca.key", "-out", dir + "/ca.crt"});
  openssl({"req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=wrong.example", "-keyout",
           dir + "/server.key", "-out", dir + "/server.csr"});
  openssl({"x509", "-req", "-in", dir + "/server.csr", "-CA", dir + "/ca.crt", "-CAkey",
           dir + "/ca.key", "-CAcreateserial", "-days", "2", "-out", dir + "/server.crt"});
  // The server reads its key only if it owns it (as root, the files are
  // root's) and no one else may read it.
  struct stat data {};
  ASSERT_EQ(::stat(db.scalar("SHOW data_directory").c_str(), &data), 0);
  for (const char* file : {"/server.key", "/server.crt"}) {
    ASSERT_EQ(::chown((dir + file).c_str(), data.st_uid, data.st_gid), 0);
  }
  ::chmod((dir + "/server.key").c_str(), 0600);
  ServerTls tls(db, dir + "/server.crt", dir + "/server.key");

  std::string host = std::getenv("PGHOST") ? std::getenv("PGHOST") : "localhost";
  std::string port = std::getenv("PGPORT") ? std::getenv("PGPORT") : "5432";
  std::string base = "port=" + port + " dbname=" + db.name() + " sslrootcert=" + dir + "/ca.crt";
  std::string wrong_name = "host=" + host + " " + base + " sslmode=verify-full";
  const std::string mismatch = "server certificate for \"wrong.example\" does not match host name";
  testing::ProcessResult refused = testing::runJobd({"--database", wrong_name, "status"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr(mismatch));
  EXPECT_THAT(refused.err, HasSubstr("cannot connect to the database"));
  testing::ProcessResult by_ca = testing::runJobd(
      {"--database", "host=" + host + " " + base + " sslmode=verify-ca", "status"});
  EXPECT_EQ(by_ca.exit_code, 0) << by_ca.err;
  testing::ProcessResult by_name = testing::runJobd(
      {"--database", "host=wrong.example hostaddr=127.0.0.1 " + base + " sslmode=verify-full",
       "status"});
  EXPECT_EQ(by_name.exit_code, 0) << by_name.err;

  std::ofstream(dir + "/jobd.conf") << "[jobd]\npoll_interval: 1s\n[noop]\n";
  testing::Process daemon(
      {testing::jobdBinary(), "--config", dir + "/jobd.conf", "--database", wrong_name, "serve"});
  bool daemon_refused = daemon.waitForOutput(mismatch, std::chrono::seconds(30));
  EXPECT_TRUE(daemon_refused) << daemon.errSoFar();
  daemon.signal(SIGTERM);
  testing::ProcessResult stopped = daemon.wait(std::chrono::seconds(60));
  EXPECT_EQ(stopped.signal, 0) << stopped.err;
  EXPECT_THAT(stopped.err, Not(HasSubstr("DAEMON_READY")));
  report("TLS verify-full, wrong name", {{"refused_by_cli", refused.exit_code == 1},
                                         {"refused_by_daemon", daemon_refused},
                                         {"verify_ca_connects", by_ca.exit_code == 0}});
}

}  // namespace
}  // namespace jobd::reliability
