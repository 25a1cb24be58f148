#include "store/daemon_registry.hpp"

#include "store/sql_params.hpp"

namespace jobd::store {

void writeHeartbeat(pqxx::connection_base& conn, const DaemonBeat& beat) {
  pqxx::nontransaction txn(conn, "daemon_heartbeat");
  // Rows of daemons that died without signing off go after a day.
  txn.exec_params(R"sql(
    WITH gone AS (DELETE FROM jobd.daemon WHERE last_seen < now() - interval '1 day')
    INSERT INTO jobd.daemon AS d (owner, hostname, pid, version, sections, workers, running,
                                  draining)
    VALUES ($1, $2, $3, $4, $5::text[], $6, $7, $8)
    ON CONFLICT (owner) DO UPDATE
       SET sections = excluded.sections, workers = excluded.workers,
           running = excluded.running, draining = excluded.draining, last_seen = now()
  )sql",
                  beat.owner, beat.hostname, beat.pid, beat.version, pgTextArray(beat.sections),
                  beat.workers, beat.running, beat.draining);
}

void signOff(pqxx::connection_base& conn, const std::string& owner) {
  pqxx::nontransaction txn(conn, "daemon_sign_off");
  txn.exec_params("DELETE FROM jobd.daemon WHERE owner = $1", owner);
}

}  // namespace jobd::store
