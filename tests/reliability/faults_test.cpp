// Faults under load (RELIABILITY.md, scenarios 1-5): daemons killed
// with SIGKILL or paused past their leases, PostgreSQL restarted and
// crashed, backends terminated under the daemons. Each scenario feeds the
// standard load (harness.hpp), injects its faults from a seeded generator,
// then checks every invariant and reports its figures.
#include <gtest/gtest.h>
#include <signal.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>

#include "harness.hpp"
#include "http_client.hpp"
#include "stalling_proxy.hpp"

namespace jobd::reliability {
namespace {

using testing::Daemon;
using testing::TestDatabase;
using testing::waitForValue;

// poll_interval and rescue_interval of every scenario here: the lease
// bound is their sum plus kLeaseMargin.
constexpr double kPoll = 1;
constexpr double kRescue = 1;
constexpr double kLeaseMargin = 2;

std::string daemonConfig(const Load& load, const std::string& lease = "3s") {
  return "[jobd]\nworkers: 8\npoll_interval: 1s\nrescue_interval: 1s\n" + load.sections(lease);
}

void sleepSeconds(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

// Seconds until sql returns "0" (it counts what the fault left behind).
double secondsUntilZero(const TestDatabase& db, const std::string& sql, Clock::time_point from) {
  waitForValue(db, sql, "0", std::chrono::seconds(60));
  return secondsSince(from);
}

// Seconds from `from` until a job of `type` enqueued now completes: the
// time the whole path (insert, notify or poll, claim, run, outcome) took
// to recover.
double probeRecovery(const TestDatabase& db, Clock::time_point from,
                     const std::string& type = "work") {
  waitForDatabase(db);
  // First in its type's queue: the measure is of the daemon's recovery,
  // not of the backlog the load built up meanwhile (on a slow machine its
  // jobs waited 9 s and more).
  std::string id = db.scalar("SELECT jobd.enqueue('" + type + "', priority => -1)");
  std::string status = waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2",
                                    std::chrono::seconds(60));
  EXPECT_EQ(status, "2") << "the probe job " << id << " did not complete";
  return secondsSince(from);
}

// The figures every fault scenario reports: the load's, the worst lease
// overrun sampled, and what the invariant checker found.
nlohmann::json scenarioFigures(const TestDatabase& db, const Invariants& found,
                               const LeaseSampler& sampler) {
  nlohmann::json figures = loadFigures(db);
  figures["max_lease_overrun_s"] = sampler.maxOverrunSeconds();
  figures["invariants"] = found.toJson();
  return figures;
}

// The end of a scenario run by a fleet: the last jobs fed, every job
// settled, every daemon still alive and stopped cleanly, every invariant
// and the lease bound checked; the common figures.
nlohmann::json endFleetScenario(const TestDatabase& db, const Load& load, Feeder& feeder,
                                LeaseSampler& sampler, Fleet& fleet) {
  feeder.finish();
  Invariants found = settleAndCheck(load);
  sampler.stop();
  EXPECT_TRUE(fleet.allAlive()) << fleet.logs();
  fleet.stopAll();
  expectHolds(found);
  EXPECT_LE(sampler.maxOverrunSeconds(), kRescue + kPoll + kLeaseMargin);
  return scenarioFigures(db, found, sampler);
}

// Scenario 1's body: `kills` SIGKILLs of the fleet's daemons at random
// moments, each restarted after 1 s, while `jobs` jobs are fed; then every
// invariant. Recovery: until no RUNNING job is leased by the dead daemon.
nlohmann::json killNine(const TestDatabase& db, const Load& load, Fleet& fleet, int jobs,
                        int kills) {
  LeaseSampler sampler(db);
  std::mt19937_64 r = rng("kill9");
  std::uniform_real_distribution<double> pause(0.3, 1.5);
  Feeder feeder(load, jobs, 200);
  double max_recovery = 0;
  for (int k = 0; k < kills; ++k) {
    sleepSeconds(pause(r));
    int victim = static_cast<int>(r() % fleet.size());
    pid_t pid = fleet.at(victim).process().pid();
    auto killed = Clock::now();
    fleet.kill9(victim);
    sleepSeconds(1);
    fleet.start(victim);
    max_recovery = std::max(
        max_recovery,
        secondsUntilZero(db,
                         "SELECT count(*) FROM jobd.job WHERE status = 1 AND lease_owner LIKE "
                         "'%:" +
                             std::to_string(pid) + ":%'",
                         killed));
    EXPECT_TRUE(fleet.at(victim).waitReady());
  }
  nlohmann::json figures = endFleetScenario(db, load, feeder, sampler, fleet);
  figures["faults"] = kills;
  figures["daemons"] = fleet.size();
  figures["max_recovery_s"] = max_recovery;
  return figures;
}

// Scenario 1: three daemons killed with SIGKILL under load.
TEST(ReliabilityFaults, KillNineDaemons) {
  TestDatabase db;
  Load load(db);
  Fleet fleet(db, daemonConfig(load), 3);
  ASSERT_TRUE(fleet.waitAllReady());
  report("kill -9 of daemons", killNine(db, load, fleet, profile().kill_jobs, profile().kills));
}

// Scenario 2: PostgreSQL restarted (fast) and crashed (immediate) under
// load. Recovery: from the fault until a job enqueued after it completes.
TEST(ReliabilityFaults, PostgresRestartsAndCrashes) {
  testing::ClusterGuard guard;
  TestDatabase db;
  Load load(db);
  Fleet fleet(db, daemonConfig(load), 2);
  ASSERT_TRUE(fleet.waitAllReady());
  LeaseSampler sampler(db);
  std::mt19937_64 r = rng("postgres");
  std::uniform_real_distribution<double> pause(1.0, 3.0);
  std::vector<std::string> faults(profile().restarts, "restart");
  faults.insert(faults.end(), profile().immediate_stops, "crash");
  std::shuffle(faults.begin(), faults.end(), r);
  Feeder feeder(load, static_cast<int>(faults.size()) * 600, 100);
  double max_recovery = 0;
  for (const std::string& fault : faults) {
    sleepSeconds(pause(r));
    auto from = Clock::now();
    if (fault == "restart") {
      testing::clusterCtl("restart", "fast");
    } else {
      testing::clusterCtl("stop", "immediate");
      sleepSeconds(1);
      testing::clusterCtl("start");
    }
    // The daemons reconnect with backoff of up to 12 s; until then no
    // lease can be renewed or rescued.
    sampler.graceUntil(Clock::now() + std::chrono::seconds(12) +
                       std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(kRescue + kPoll)));
    max_recovery = std::max(max_recovery, probeRecovery(db, from));
  }
  nlohmann::json figures = endFleetScenario(db, load, feeder, sampler, fleet);
  figures["faults"] = {{"restart_fast", profile().restarts},
                       {"stop_immediate", profile().immediate_stops}};
  figures["max_recovery_s"] = max_recovery;
  // Inserts the database acknowledged; with synchronous_commit=off on the
  // server (the test cluster's setting) a crash may lose the last few.
  figures["enqueue_acknowledged"] = feeder.inserted();
  report("PostgreSQL restart and crash", figures);
}

// Scenario 3: pg_terminate_backend of the listener (jobs inserted in the
// gap start within poll_interval + 1 s), then of random daemon and job
// connections, mid-job and mid-completion.
TEST(ReliabilityFaults, TerminatedBackends) {
  TestDatabase db;
  Load load(db);
  Fleet fleet(db, daemonConfig(load), 2);
  ASSERT_TRUE(fleet.waitAllReady());
  std::string in_db = "datname = current_database() AND pid <> pg_backend_pid()";
  double worst_gap_start = 0;
  for (int round = 0; round < 3; ++round) {
    // READY does not wait for the LISTEN session (a poll covers its absence):
    // wait until there is one to terminate.
    ASSERT_EQ(waitForValue(db,
                           "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = "
                           "'jobd listen' AND " +
                               in_db,
                           "true"),
              "true");
    ASSERT_EQ(db.scalar("SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity "
                        "WHERE application_name = 'jobd listen' AND " +
                        in_db),
              "t");
    std::string id = db.scalar("SELECT jobd.enqueue('work')");
    std::string started =
        waitForValue(db, "SELECT status = 2 FROM jobd.job WHERE id = " + id, "true");
    ASSERT_EQ(started, "true");
    worst_gap_start =
        std::max(worst_gap_start,
                 std::stod(db.scalar("SELECT extract(epoch FROM date_started - date_created) "
                                     "FROM jobd.job WHERE id = " +
                                     id)));
  }
  EXPECT_LE(worst_gap_start, kPoll + 1);

  LeaseSampler sampler(db);
  std::mt19937_64 r = rng("terminate");
  int terminations = profile().full ? 200 : 50;
  Feeder feeder(load, terminations * 20, 200);
  int terminated = 0;
  for (int t = 0; t < terminations; ++t) {
    sleepSeconds(0.1);
    std::istringstream pids(
        db.scalar("SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity WHERE "
                  "application_name LIKE 'jobd%' AND " +
                  in_db));
    std::vector<std::string> candidates{std::istream_iterator<std::string>(pids), {}};
    if (!candidates.empty()) {
      std::string pid = candidates[r() % candidates.size()];
      terminated += db.scalar("SELECT pg_terminate_backend(" + pid + ")") == "t";
    }
  }
  nlohmann::json figures = endFleetScenario(db, load, feeder, sampler, fleet);
  figures["faults"] = terminated;
  figures["listener_gap_worst_start_s"] = worst_gap_start;
  figures["max_recovery_s"] = worst_gap_start;
  report("pg_terminate_backend", figures);
}

std::string environment(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// The UTC time of a log line's timestamp ("2026-11-29T01:43:36.385Z ...").
std::chrono::system_clock::time_point logTime(const std::string& line) {
  std::tm tm{};
  strptime(line.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// Scenario 5: pauses and clocks. Three daemons: one whose clock runs 10
// minutes ahead and one 10 minutes behind (libfaketime), one on time.
// Among the standard load, jobs scheduled a few seconds ahead. Each daemon
// in turn is paused (SIGSTOP) for its lease + 4 s, then resumed. Every
// time comparison uses the database's clock, so: no job starts before its
// scheduled_start; a lease is rescued only from a paused daemon, and no
// earlier than its last renewal could have lasted; the paused daemon's
// late completions are fenced (the invariants: no double effect).
TEST(ReliabilityFaults, PausedAndSkewedDaemons) {
  TestDatabase db;
  Load load(db);
  std::string asan = environment("ASAN_OPTIONS", "");
  std::vector<std::unique_ptr<Daemon>> daemons;
  const std::vector<std::string> offsets = {"+10m", "-10m", ""};
  for (const std::string& offset : offsets) {
    std::map<std::string, std::string> env;
    if (!offset.empty()) {
      env = {{"LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"},
             {"FAKETIME", offset},
             // libfaketime is preloaded ahead of the sanitizer's runtime.
             {"ASAN_OPTIONS", asan + (asan.empty() ? "" : ":") + "verify_asan_link_order=0"}};
    }
    daemons.push_back(
        std::make_unique<Daemon>(db, daemonConfig(load), std::vector<std::string>{}, env));
  }
  for (std::size_t i = 0; i < daemons.size(); ++i) {
    ASSERT_TRUE(daemons[i]->waitForLog("DAEMON_READY"));
    // The skew took: the daemon's own log is stamped with its clock.
    std::string log = daemons[i]->log();
    std::size_t line = log.rfind('\n', log.find("DAEMON_READY"));
    line = line == std::string::npos ? 0 : line + 1;
    double skew =
        std::chrono::duration<double>(logTime(log.substr(line)) - std::chrono::system_clock::now())
            .count();
    double expected = offsets[i].empty() ? 0 : (offsets[i][0] == '+' ? 600 : -600);
    EXPECT_NEAR(skew, expected, 30) << log;
  }
  LeaseSampler sampler(db);
  db.scalar(
      "SELECT count(jobd.enqueue('work', scheduled_start => now() + random() * interval '25 "
      "seconds')) FROM generate_series(1, 300)");
  Feeder feeder(load, profile().full ? 6000 : 2000, 100);
  std::string rescued_ok = "false";
  int pauses = 0;
  std::string pause_windows;
  for (int round = 0; round < (profile().full ? 3 : 1); ++round) {
    for (auto& daemon : daemons) {
      pid_t pid = daemon->process().pid();
      std::string paused_at = db.scalar("SELECT now()");
      daemon->process().signal(SIGSTOP);
      sleepSeconds(3 + 4);
      daemon->process().signal(SIGCONT);
      ++pauses;
      pause_windows += "pid " + std::to_string(pid) + " from " + paused_at + "; ";
      // Renewals run every lease / 3 = 1 s: the last one before the pause
      // held the lease until at least 2 s after it.
      rescued_ok += " OR (o.vars->>'lease_owner' LIKE '%:" + std::to_string(pid) +
                    ":%' AND o.time >= '" + paused_at + "'::timestamptz + interval '1.5 s')";
      sleepSeconds(2);
    }
  }
  feeder.finish();
  Invariants found = settleAndCheck(load);
  sampler.stop();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job WHERE date_started < scheduled_start"), "0");
  std::string early_rescues =
      db.scalar("SELECT count(*) FROM jobd.oops o WHERE o.type = 'LeaseExpired' AND NOT (" +
                rescued_ok + ")");
  std::string early_detail = db.scalar(
      "SELECT string_agg(o.time || ' job ' || o.job_id || ' ' || o.value, E'\\n' ORDER BY "
      "o.time) FROM jobd.oops o WHERE o.type = 'LeaseExpired' AND NOT (" +
      rescued_ok + ")");
  std::string logs;
  for (auto& daemon : daemons) {
    testing::ProcessResult r = daemon->stop(std::chrono::seconds(120));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    logs += r.err;
  }
  // What the daemons said about their connections and renewals, to tell
  // an early rescue's cause.
  std::string trouble;
  std::istringstream lines(logs);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("DATABASE_") != std::string::npos ||
        line.find("LEASE_RENEW") != std::string::npos) {
      trouble += line + "\n";
    }
  }
  EXPECT_EQ(early_rescues, "0") << "pauses: " << pause_windows << "\nearly rescues:\n"
                                << early_detail << "\n"
                                << trouble;
  expectHolds(found);
  // A daemon stopped inside a transaction (an outcome's, or a sql job's
  // between its COMPLETED mark and its COMMIT) keeps those rows locked
  // until it is resumed, and the rescue skips locked rows: such a lease
  // can stay expired until the pause ends, 4 s after it expired (once
  // 4.19 s on a loaded machine). So the bound here is the pause's end,
  // and a rescue pass and a poll after it: the lease ran out no sooner
  // than two thirds of it into the pause (its last renewal came at most a
  // third of it before).
  constexpr double kLease = 3;
  constexpr double kPause = kLease + 4;
  EXPECT_LE(sampler.maxOverrunSeconds(), kPause - kLease * 2 / 3 + kRescue + kPoll);
  std::size_t fenced = 0;
  for (std::size_t at = logs.find("JOB_LEASE_LOST"); at != std::string::npos;
       at = logs.find("JOB_LEASE_LOST", at + 1)) {
    ++fenced;
  }
  nlohmann::json figures = scenarioFigures(db, found, sampler);
  figures["faults"] = {{"sigstop", pauses}, {"clock_offsets", {"+10m", "-10m"}}};
  figures["rescues"] =
      std::stoll(db.scalar("SELECT count(*) FROM jobd.oops WHERE type = 'LeaseExpired'"));
  figures["early_rescues"] = std::stoll(early_rescues);
  figures["fenced_late_outcomes"] = fenced;
  report("SIGSTOP past the lease, clocks 10 min off", figures);
}

// Scenario 4: half-open connections. Every connection of one daemon, its
// LISTEN session among them, goes through a proxy that, at random moments,
// stops forwarding on every connection it carries without closing any (a
// stalled middlebox). The daemon must notice within database_timeout (plus
// its watchdog's second; the LISTEN session by its probe), close them,
// reconnect and go on; once one has gone silent, it replaces those that
// have not answered since at their next use (the LISTEN session at its
// next probe check); its io loop must answer /healthz throughout. A sql
// job that waits on a stalled job connection is stopped at its timeout (the
// connection closed kill_grace later) and fails with TimeoutError, as SPEC
// §5 says of any job. (Through a pooler: CommitSwallowedAfterTheCompletedMark.)
TEST(ReliabilityFaults, HalfOpenConnections) {
  TestDatabase db;
  Load load(db);
  StallingProxy proxy(environment("PGHOST", "localhost"), environment("PGPORT", "5432"));
  constexpr double kDatabaseTimeout = 2;
  // The job's own transaction may be held by the server until it has been
  // idle longer than timeout + kill_grace + 5 s: until then nobody can
  // rescue its job.
  constexpr double kJobIdleLimit = 5 + 1 + 5;
  std::string config =
      "[jobd]\nworkers: 8\npoll_interval: 1s\nrescue_interval: 1s\ndatabase_timeout: 2s\n"
      "metrics_listen: 127.0.0.1:0\n" +
      load.sections("3s", "timeout: 5s\nkill_grace: 1s\n");
  Daemon daemon(db, config, {},
                {{"PGHOST", "127.0.0.1"}, {"PGPORT", std::to_string(proxy.port())}});
  ASSERT_TRUE(daemon.waitReady());
  std::string healthz = testing::baseUrl(daemon.process()) + "/healthz";
  LeaseSampler sampler(db);
  std::mt19937_64 r = rng("half-open");
  std::uniform_real_distribution<double> pause(1.0, 3.0);
  int stalls = profile().full ? 8 : 2;
  Feeder feeder(load, stalls * 400, 100);
  double max_recovery = 0;
  double worst_healthz = 0;
  int stalled_connections = 0;
  for (int k = 0; k < stalls; ++k) {
    sleepSeconds(pause(r));
    auto from = Clock::now();
    stalled_connections += proxy.stallExisting();
    sampler.graceUntil(from + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(kJobIdleLimit + kRescue + kPoll)));
    // The io loop answers while the database threads wait on nothing.
    while (secondsSince(from) < kDatabaseTimeout + 2) {
      auto asked = Clock::now();
      testing::HttpReply reply = testing::httpGet(healthz, 5000);
      EXPECT_EQ(reply.status, 200) << reply.error;
      worst_healthz = std::max(worst_healthz, secondsSince(asked));
      sleepSeconds(0.2);
    }
    // An exec job: a sql job may start on a worker's job connection that
    // the stall caught, and wait for its timeout.
    max_recovery = std::max(max_recovery, probeRecovery(db, from, "ext"));
  }
  feeder.finish();
  Invariants found = settleAndCheck(load);
  sampler.stop();
  EXPECT_TRUE(daemon.log().find("no answer from the database") != std::string::npos)
      << daemon.log();
  // The LISTEN session is replaced: by its probe, or once another
  // connection went silent after its last answer.
  EXPECT_TRUE(daemon.log().find("no notification came back") != std::string::npos ||
              daemon.log().find("LISTENER_REOPEN") != std::string::npos)
      << daemon.log();
  // drain_timeout (60 s) and the release of what still runs.
  daemon.process().signal(SIGTERM);
  testing::ProcessResult stopped = waitOrDump(daemon.process(), std::chrono::seconds(120));
  EXPECT_EQ(stopped.exit_code, 0);
  expectHolds(found);
  EXPECT_LE(worst_healthz, 1.0);
  EXPECT_LE(max_recovery, kDatabaseTimeout + 1 + 10);
  EXPECT_LE(sampler.maxOverrunSeconds(), kRescue + kPoll + kLeaseMargin);
  if (HasFailure()) {
    std::cerr << "the daemon's log:\n" << stopped.err;
  }
  nlohmann::json figures = scenarioFigures(db, found, sampler);
  figures["faults"] = stalls;
  figures["stalled_connections"] = stalled_connections;
  figures["max_recovery_s"] = max_recovery;
  figures["worst_healthz_s"] = worst_healthz;
  report("half-open connections", figures);
}

// Regression (scenario 4, 2026-12-07: four sql jobs caught by the stall
// while they connected waited out libpq's 10 s connect_timeout, past their
// timeout and kill_grace: every slot of their section was stuck, and the
// daemon exited). A job's connect gives up by its timeout and half its
// kill_grace: here the proxy holds the startup message of the one job's
// connection, and the job is released before it could be reported stuck.
TEST(ReliabilityFaults, AJobWhoseConnectStallsIsNotStuck) {
  TestDatabase db;
  StallingProxy proxy(environment("PGHOST", "localhost"), environment("PGPORT", "5432"));
  std::string config =
      "[jobd]\nworkers: 2\npoll_interval: 1s\n"
      "[stalled]\nhandler: sql\nstatement: SELECT 1\ndbuser: jobd_stalled_connect\n"
      "timeout: 2s\nkill_grace: 2s\n";
  Daemon daemon(db, config, {},
                {{"PGHOST", "127.0.0.1"}, {"PGPORT", std::to_string(proxy.port())}});
  ASSERT_TRUE(daemon.waitReady());
  proxy.stallBefore("jobd_stalled_connect", "");
  std::string id = db.scalar("SELECT jobd.enqueue('stalled')");
  ASSERT_TRUE(daemon.waitForLog("JOB_CONNECT_FAILED id=" + id, std::chrono::seconds(8)))
      << daemon.log();
  EXPECT_EQ(proxy.triggered(), 1) << daemon.log();
  // Past the moment the job would have been stuck (timeout + kill_grace,
  // 4 s from its claim) and every slot with it (another kill_grace).
  sleepSeconds(4.5);
  EXPECT_EQ(daemon.log().find("JOB_STUCK"), std::string::npos) << daemon.log();
  daemon.process().signal(SIGTERM);
  testing::ProcessResult stopped = waitOrDump(daemon.process(), std::chrono::seconds(30));
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
}

// Regression (scenario 4 in CI, 2026-12-07: recovery took 13.1 s and 13.8 s against a
// bound of 13): a stall catches idle connections too, and each was found
// only at its next use, one deadline later; a worker's cached job
// connection cost the next job there its whole timeout and kill_grace.
// Once the daemon has seen one connection go silent, it replaces, at its
// next use, every connection that has not answered since the silent work
// began (unit.SilentConnectionTest has the rule). Here the one worker's cached
// job connection is caught idle: the next job must not wait for its
// timeout (10 s) to run.
TEST(ReliabilityFaults, AStallFoundOnOneConnectionReplacesTheIdleOnes) {
  TestDatabase db;
  StallingProxy proxy(environment("PGHOST", "localhost"), environment("PGPORT", "5432"));
  std::string config =
      "[jobd]\nworkers: 1\npoll_interval: 1s\ndatabase_timeout: 1s\n"
      "[work]\nhandler: sql\nstatement: SELECT 1\ntimeout: 10s\nkill_grace: 2s\n";
  Daemon daemon(db, config, {},
                {{"PGHOST", "127.0.0.1"}, {"PGPORT", std::to_string(proxy.port())}});
  ASSERT_TRUE(daemon.waitReady());
  std::string first = db.scalar("SELECT jobd.enqueue('work')");
  ASSERT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + first, "2",
                         std::chrono::seconds(10)),
            "2")
      << daemon.log();
  EXPECT_GE(proxy.stallExisting(), 3);  // the claims', the LISTEN session's, the job's
  ASSERT_TRUE(daemon.waitForLog("no answer from the database", std::chrono::seconds(10)))
      << daemon.log();
  auto from = Clock::now();
  std::string second = db.scalar("SELECT jobd.enqueue('work')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + second, "2",
                         std::chrono::seconds(30)),
            "2")
      << daemon.log();
  double took = secondsSince(from);
  std::cout << "the job after the stall ran " << took << " s after its enqueue\n";
  EXPECT_LT(took, 6.0) << daemon.log();
  EXPECT_EQ(db.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + second), "1");
  daemon.process().signal(SIGTERM);
  testing::ProcessResult stopped = waitOrDump(daemon.process(), std::chrono::seconds(30));
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
}

// Regression (CI of e905c70: the log ended at a JOB_TIMEOUT, /healthz and
// SIGTERM went unanswered, the jobs it held were lost): a timeout's cancel
// request (PQcancel, which waits for the server's answer with no time
// limit) ran on the io thread. Here a middlebox takes the cancel request
// and never forwards or answers it. The io loop must go on answering, the
// job must still end at its timeout (its socket closed kill_grace later),
// and the daemon must stop on SIGTERM.
TEST(ReliabilityFaults, ACancelRequestThatIsNeverAnsweredBlocksNothing) {
  TestDatabase db;
  StallingProxy proxy(environment("PGHOST", "localhost"), environment("PGPORT", "5432"));
  std::string config =
      "[jobd]\nworkers: 2\npoll_interval: 1s\ndatabase_timeout: 2s\n"
      "metrics_listen: 127.0.0.1:0\n"
      "[slow]\nhandler: sql\nstatement: SELECT pg_sleep(60)\ntimeout: 1s\nkill_grace: 1s\n"
      "[short]\nhandler: sql\nstatement: SELECT pg_sleep(1.5)\ntimeout: 1s\nkill_grace: 5s\n";
  Daemon daemon(db, config, {},
                {{"PGHOST", "127.0.0.1"}, {"PGPORT", std::to_string(proxy.port())}});
  ASSERT_TRUE(daemon.waitReady());
  // A CancelRequest: its length (16) and its code, 80877102.
  proxy.stallBefore(std::string("\x00\x00\x00\x10\x04\xd2\x16\x2e", 8), "");
  std::string healthz = testing::baseUrl(daemon.process()) + "/healthz";
  auto from = Clock::now();
  std::string id = db.scalar("SELECT jobd.enqueue('slow')");
  double worst_healthz = 0;
  while (secondsSince(from) < 6) {
    auto asked = Clock::now();
    testing::HttpReply reply = testing::httpGet(healthz, 3000);
    EXPECT_EQ(reply.status, 200) << reply.error;
    worst_healthz = std::max(worst_healthz, secondsSince(asked));
    sleepSeconds(0.2);
  }
  EXPECT_EQ(proxy.triggered(), 1) << daemon.log();
  EXPECT_LE(worst_healthz, 1.0);
  std::string status = waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "3",
                                    std::chrono::seconds(10));
  EXPECT_EQ(status, "3") << daemon.log();
  EXPECT_EQ(db.scalar("SELECT log FROM jobd.job WHERE id = " + id).rfind("TimeoutError", 0), 0U);
  // A query that ends by itself, past its timeout and before kill_grace,
  // while its cancel request hangs: the job's connection must not stay
  // open behind it (the request's thread holds it). Nor may the first
  // job's query, whose socket was closed at kill_grace, run on for its
  // whole minute.
  proxy.stallBefore(std::string("\x00\x00\x00\x10\x04\xd2\x16\x2e", 8), "");
  std::string short_id = db.scalar("SELECT jobd.enqueue('short')");
  EXPECT_EQ(waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + short_id, "3",
                         std::chrono::seconds(10)),
            "3")
      << daemon.log();
  EXPECT_EQ(proxy.triggered(), 2) << daemon.log();
  EXPECT_EQ(waitForValue(db,
                         "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                         "'jobd job' AND datname = current_database()",
                         "0", std::chrono::seconds(5)),
            "0")
      << db.scalar(
             "SELECT string_agg(state || ': ' || query, ', ') FROM pg_stat_activity "
             "WHERE application_name = 'jobd job' AND datname = current_database()");
  daemon.process().signal(SIGTERM);
  testing::ProcessResult stopped = waitOrDump(daemon.process(), std::chrono::seconds(30));
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
}

// Regression (the quick profile's scenario 4 on CI: two jobs RUNNING 194 s
// past their leases): a job's COMMIT that a middlebox swallows after the
// COMPLETED mark leaves the server's transaction holding the job's row,
// which the rescue skips (SKIP LOCKED) until the server ends that idle
// transaction. A pooled daemon (`listen_database` apart from `database`)
// made no session settings, so the server never did. Both ways, the job
// must be rescued and run again, its effect written once, and the daemon's
// renewals must go on meanwhile.
TEST(ReliabilityFaults, CommitSwallowedAfterTheCompletedMark) {
  std::string host = environment("PGHOST", "localhost");
  std::string port = environment("PGPORT", "5432");
  for (bool pooled : {false, true}) {
    SCOPED_TRACE(pooled ? "pooled" : "direct");
    TestDatabase db;
    Load load(db);
    StallingProxy proxy(host, port);
    std::string config =
        "[jobd]\nworkers: 2\npoll_interval: 1s\nrescue_interval: 1s\ndatabase_timeout: 2s\n";
    if (pooled) {
      config.append("listen_database: host=").append(host).append(" port=").append(port);
      config.append(" dbname=").append(db.name()).append("\n");
    }
    config += load.sections("2s", "timeout: 2s\nkill_grace: 1s\n");
    Daemon daemon(db, config, {},
                  {{"PGHOST", "127.0.0.1"}, {"PGPORT", std::to_string(proxy.port())}});
    ASSERT_TRUE(daemon.waitReady());
    proxy.stallBefore("COMMIT", "complete_in_job_transaction");
    auto from = Clock::now();
    std::string id = db.scalar("SELECT jobd.enqueue('work')");
    while (proxy.triggered() == 0 && secondsSince(from) < 20) {
      sleepSeconds(0.1);
    }
    ASSERT_EQ(proxy.triggered(), 1) << daemon.log();
    // The server ends the transaction once idle for timeout + kill_grace
    // + 5 s; the lease has expired by then, and the rescue runs each second.
    std::string status = waitForValue(db, "SELECT status FROM jobd.job WHERE id = " + id, "2",
                                      std::chrono::seconds(40));
    EXPECT_EQ(status, "2") << daemon.log();
    EXPECT_LE(secondsSince(from), 8 + 2 + kRescue + kPoll + kLeaseMargin + 5);
    EXPECT_EQ(db.scalar("SELECT attempt_count FROM jobd.job WHERE id = " + id), "2");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM jobd.job_attempt WHERE job_id = " + id +
                        " AND outcome = 'lease_expired'"),
              "1");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM effects WHERE job_id = " + id), "1");
    // The row the stalled transaction holds is passed over by the renewals
    // (schema 13) and said to be busy, not waited for: before, every
    // renewal of the daemon ran into its deadline while it was held.
    EXPECT_NE(daemon.log().find("LEASE_RENEW_BUSY id=" + id + " "), std::string::npos)
        << daemon.log();
    EXPECT_EQ(daemon.stop(std::chrono::seconds(30)).exit_code, 0);
  }
}

// Regression (a known limit of the first round): a LISTEN session that a
// middlebox stalls delivered nothing, silently, for ever; jobs then waited
// for the next poll. With poll_interval at a minute, a job enqueued after
// the stall must start on its NOTIFY, on a session opened again.
TEST(ReliabilityFaults, StalledListenSessionIsReplaced) {
  TestDatabase db;
  Load load(db);
  StallingProxy proxy(environment("PGHOST", "localhost"), environment("PGPORT", "5432"));
  std::string config =
      "[jobd]\nworkers: 2\npoll_interval: 60s\ndatabase_timeout: 2s\n"
      "listen_database: host=127.0.0.1 port=" +
      std::to_string(proxy.port()) + " dbname=" + db.name() + "\n" + load.sections();
  Daemon daemon(db, config);
  ASSERT_TRUE(daemon.waitReady());
  EXPECT_LT(probeRecovery(db, Clock::now(), "ext"), 5);
  // The LISTEN session, and the quiet enqueue's sleep session once opened
  // (both on listen_database).
  int stalled = proxy.stallExisting();
  ASSERT_GE(stalled, 1);
  ASSERT_LE(stalled, 2);
  auto from = Clock::now();
  // Probes every second (database_timeout / 2); one unanswered for 2 s.
  // (Or the sleep session, stalled too, went silent first: the LISTEN
  // session, which has heard nothing since, is then replaced as well.)
  while (daemon.log().find("no notification came back within 2000 ms") == std::string::npos &&
         daemon.log().find("LISTENER_REOPEN") == std::string::npos && secondsSince(from) < 15) {
    sleepSeconds(0.05);
  }
  ASSERT_LT(secondsSince(from), 15) << daemon.log();
  EXPECT_LE(secondsSince(from), 2 * 2 + 2);
  ASSERT_TRUE(daemon.waitForLog("LISTENER_UP listening again", std::chrono::seconds(15)))
      << daemon.log();
  EXPECT_LT(probeRecovery(db, Clock::now(), "ext"), 5) << daemon.log();
  EXPECT_EQ(daemon.stop().exit_code, 0);
}

// A TCP port nothing listens on now.
int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0 &&
               ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  EXPECT_TRUE(bound);
  return ntohs(address.sin_port);
}

// Scenario 11: scenario 1 at a smaller size through PgBouncer (Debian's
// package) in transaction pooling mode: the daemons' `database` is the
// pooler, their LISTEN session goes direct (listen_database).
TEST(ReliabilityFaults, KillNineThroughPgBouncer) {
  TestDatabase db;
  Load load(db);
  std::string host = environment("PGHOST", "localhost");
  std::string port = environment("PGPORT", "5432");
  int bouncer_port = freePort();
  std::string dir = ::testing::TempDir() + "jobd_pgbouncer_" + db.name();
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/pgbouncer.ini")
      << "[databases]\n"
      << db.name() << " = host=" << host << " port=" << port << " dbname=" << db.name()
      << " user=" << environment("PGUSER", "postgres")
      << " password=" << environment("PGPASSWORD", "") << "\n"
      << "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = " << bouncer_port
      << "\nunix_socket_dir =\nauth_type = any\npool_mode = transaction\n"
         "max_client_conn = 500\ndefault_pool_size = 20\n"
         "ignore_startup_parameters = extra_float_digits\nadmin_users = "
      << environment("PGUSER", "postgres") << "\n";
  // PgBouncer will not run as root: as root, it runs as postgres.
  std::vector<std::string> argv = {"/usr/sbin/pgbouncer", dir + "/pgbouncer.ini"};
  if (::geteuid() == 0) {
    argv.insert(argv.begin() + 1, {"-u", "postgres"});
  }
  testing::Process bouncer(argv);
  std::string through =
      "host=127.0.0.1 port=" + std::to_string(bouncer_port) + " dbname=" + db.name();
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    try {
      pqxx::connection probe(through);
      up = true;
    } catch (const std::exception&) {
      sleepSeconds(0.1);
    }
  }
  ASSERT_TRUE(up) << "PgBouncer did not start: " << bouncer.errSoFar();
  std::string config =
      "[jobd]\nworkers: 8\npoll_interval: 1s\nrescue_interval: 1s\n"
      "listen_database: host=" +
      host + " port=" + port + " dbname=" + db.name() + "\n" + load.sections();
  Fleet fleet(db, config, 3, {{"PGHOST", "127.0.0.1"}, {"PGPORT", std::to_string(bouncer_port)}});
  ASSERT_TRUE(fleet.waitAllReady());
  // The daemons' connections really go through the pooler: its admin
  // console lists them as clients of this database.
  // (psql: libpqxx refuses the console's version string.)
  auto clients = [&] {
    testing::ProcessResult shown =
        testing::runProcess({"psql", "-h", "127.0.0.1", "-p", std::to_string(bouncer_port), "-d",
                             "pgbouncer", "-Atc", "SHOW CLIENTS"});
    int n = 0;
    std::istringstream lines(shown.out);
    for (std::string line; std::getline(lines, line);) {
      n += line.find("|" + db.name() + "|") != std::string::npos ? 1 : 0;
    }
    return n;
  };
  EXPECT_GE(clients(), fleet.size());
  nlohmann::json figures =
      killNine(db, load, fleet, profile().full ? 3000 : 600, profile().full ? 10 : 3);
  figures["pool_mode"] = "transaction";
  report("kill -9 through PgBouncer", figures);
  bouncer.signal(SIGTERM);
}

}  // namespace
}  // namespace jobd::reliability
