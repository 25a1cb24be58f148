"""The job's own database connection in a Python worker (``jobd.worker``).

One connection per worker, opened when a job first reads
``context.connection`` and kept for the worker's later jobs, as the C++
runner keeps one per worker thread (runtime/job_executor.cpp). Each job
gets a transaction begun for it; the worker ends it: a COMMIT with the
job's COMPLETED mark, or a ROLLBACK.

psycopg 3 when it is installed, else psycopg2; both are imported only when
a job asks for a connection.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable

from .job import ConnectFailed

# The application_name of the job's sessions, as the C++ runner's.
APPLICATION_NAME = "jobd job"
# The server checks for a vanished client this often while a query runs.
_CHECK_INTERVAL_MS = 1000
# client_connection_check_interval appeared in PostgreSQL 14.
_CHECK_INTERVAL_SINCE = 140000


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Driver:
    """What differs between psycopg 3 and psycopg2 for the worker."""

    name = ""
    Error: type[BaseException] = Exception

    def connect(self, conninfo: str, extra: dict[str, str]) -> Any:
        raise NotImplementedError

    def parse(self, conninfo: str) -> dict[str, Any]:
        raise NotImplementedError

    def cursor(self, conn: Any) -> Any:
        """A cursor that returns tuples, whatever the job set on the connection."""
        raise NotImplementedError

    def broken(self, conn: Any) -> bool:
        """Whether the connection is closed or its session lost."""
        raise NotImplementedError

    def sqlstate(self, error: BaseException) -> str | None:
        raise NotImplementedError

    def server_version(self, conn: Any) -> int:
        raise NotImplementedError


class Psycopg3(Driver):
    name = "psycopg"

    def __init__(self) -> None:
        import psycopg
        import psycopg.conninfo
        import psycopg.rows

        self._psycopg = psycopg
        self._tuple_row = psycopg.rows.tuple_row
        self.Error = psycopg.Error

    def connect(self, conninfo: str, extra: dict[str, str]) -> Any:
        return self._psycopg.connect(conninfo, autocommit=False, **extra)

    def parse(self, conninfo: str) -> dict[str, Any]:
        return self._psycopg.conninfo.conninfo_to_dict(conninfo)

    def cursor(self, conn: Any) -> Any:
        return conn.cursor(row_factory=self._tuple_row)

    def broken(self, conn: Any) -> bool:
        return bool(conn.closed or getattr(conn, "broken", False))

    def sqlstate(self, error: BaseException) -> str | None:
        return getattr(error, "sqlstate", None) if isinstance(error, self.Error) else None

    def server_version(self, conn: Any) -> int:
        return int(conn.info.server_version)


class Psycopg2(Driver):
    name = "psycopg2"

    def __init__(self) -> None:
        import psycopg2
        import psycopg2.extensions

        self._psycopg2 = psycopg2
        self._ext = psycopg2.extensions
        self.Error = psycopg2.Error

    def connect(self, conninfo: str, extra: dict[str, str]) -> Any:
        conn = self._psycopg2.connect(conninfo, **extra)
        conn.autocommit = False
        return conn

    def parse(self, conninfo: str) -> dict[str, Any]:
        return self._ext.parse_dsn(conninfo)

    def cursor(self, conn: Any) -> Any:
        return conn.cursor(cursor_factory=self._ext.cursor)

    def broken(self, conn: Any) -> bool:
        return bool(conn.closed)

    def sqlstate(self, error: BaseException) -> str | None:
        return getattr(error, "pgcode", None) if isinstance(error, self.Error) else None

    def server_version(self, conn: Any) -> int:
        return int(conn.server_version)


def load_driver() -> Driver:
    """psycopg 3 if it can be imported, else psycopg2. Neither is an
    ImportError: the worker's Python is set up wrong, which no retry
    mends (the job fails with an OOPS saying so)."""
    try:
        return Psycopg3()
    except ImportError:
        pass
    try:
        return Psycopg2()
    except ImportError:
        raise ImportError("jobd: the job's database connection needs psycopg (3) or psycopg2 "
                          "in the worker's Python: apt install python3-psycopg, or pip install "
                          "'jobd[psycopg]'") from None


class JobConnection:
    """The worker's one job connection and the transaction of its job.

    ``conninfo``: the daemon's database as the section's dbuser (the hello's
    ``job_conninfo``). ``pooled``: it may lead to a transaction pooler
    (PgBouncer), so no session setting is made: each job's transaction sets
    its own limit instead (SET LOCAL). ``idle_limit_ms``: the server ends a
    job's transaction idle for longer (the section's timeout, kill_grace
    and 5 s: a transaction whose worker vanished must not hold its locks
    for ever).
    """

    def __init__(self, conninfo: str, pooled: bool, idle_limit_ms: int,
                 log: Callable[[str], None]) -> None:
        self._conninfo = conninfo
        self._pooled = pooled
        self._idle_limit_ms = idle_limit_ms
        self._log = log
        self.driver: Driver | None = None
        self.conn: Any = None
        self._begun = False  # a transaction was begun for the current job

    @property
    def in_transaction(self) -> bool:
        """Whether the current job's transaction is open."""
        return self._begun and self.conn is not None

    def get(self) -> Any:
        """The connection, inside the job's transaction (begun at the first
        call of a job). A cached connection that died since the last job
        is replaced once; a connection that cannot be opened or begun
        raises ConnectFailed."""
        if self._begun and self.conn is not None:
            return self.conn
        if self.driver is None:
            self.driver = load_driver()
        reused = self.conn is not None and not self.driver.broken(self.conn)
        if not reused:
            self.close()
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = self._open()
                self._begin()
                self._begun = True
                return self.conn
            except ConnectFailed:
                raise
            except Exception as e:
                self.close()
                if reused and attempt == 1 and isinstance(e, self.driver.Error):
                    self._log(f"the cached job connection was lost ({_first_line(e)}); "
                              "reopening it")
                    continue
                raise ConnectFailed(f"cannot open the job's database connection: "
                                    f"{_first_line(e)}") from e
        raise AssertionError("unreachable")

    def _open(self) -> Any:
        assert self.driver is not None
        conn = self.driver.connect(self._conninfo, self._connect_defaults())
        if self._pooled and self.driver.name == "psycopg":
            # psycopg 3 prepares a statement on the server after its fifth
            # run; through a transaction pooler the next transaction may
            # reach another server session, which has no such statement.
            conn.prepare_threshold = None
        try:
            if not self._pooled:
                cursor = self.driver.cursor(conn)
                settings = [("idle_in_transaction_session_timeout", str(self._idle_limit_ms))]
                if self.driver.server_version(conn) >= _CHECK_INTERVAL_SINCE:
                    # A query whose worker was killed ends within a second
                    # instead of running on with its locks held.
                    settings.append(("client_connection_check_interval",
                                     str(_CHECK_INTERVAL_MS)))
                for name, value in settings:
                    cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
                cursor.close()
                conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        return conn

    def _connect_defaults(self) -> dict[str, str]:
        """The C++ runner's connection defaults (store::withNetworkDefaults),
        for what the conninfo and the environment do not set: a dead server
        is noticed within about a minute, not the kernel's two hours."""
        assert self.driver is not None
        try:
            given = set(self.driver.parse(self._conninfo))
        except Exception:
            return {}  # connecting says what is wrong with it
        defaults = {"application_name": APPLICATION_NAME, "connect_timeout": "10",
                    "keepalives_idle": "30", "keepalives_interval": "10",
                    "keepalives_count": "3"}
        environment = {"application_name": "PGAPPNAME", "connect_timeout": "PGCONNECT_TIMEOUT"}
        return {key: value for key, value in defaults.items()
                if key not in given and not os.environ.get(environment.get(key, ""), "")}

    def _begin(self) -> None:
        """Begin the job's transaction now, so that a dead connection shows
        here (and is replaced) rather than at the job's first statement."""
        assert self.driver is not None
        cursor = self.driver.cursor(self.conn)
        try:
            if self._pooled:
                cursor.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, "
                               "true)", (str(self._idle_limit_ms),))
            else:
                cursor.execute("SELECT 1")
        finally:
            cursor.close()

    def broken(self) -> bool:
        return self.conn is not None and self.driver is not None and self.driver.broken(self.conn)

    def rollback(self) -> None:
        """End the job's transaction with ROLLBACK; a connection that cannot
        roll back is closed (the next job opens another)."""
        self._begun = False
        if self.conn is None:
            return
        try:
            self.conn.rollback()
        except Exception as e:
            self._log(f"cannot roll back the job's transaction ({_first_line(e)}); "
                      "closing its connection")
            self.close()
            return
        if self.broken():
            self.close()

    def job_ended(self) -> None:
        """The job's transaction was committed (or rolled back) by the worker."""
        self._begun = False
        if self.broken():
            self.close()

    def cancel_query(self) -> None:
        """Ask the server to cancel what the connection runs now (from
        another thread): a stopped job's query ends at once."""
        conn = self.conn
        if conn is None or not self._begun:
            return
        try:
            conn.cancel()
        except Exception as e:
            self._log(f"cannot send the cancel request for the job's query: {_first_line(e)}")

    def close(self) -> None:
        """Close the connection, if any."""
        self._begun = False
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
