"""The two drivers :func:`jobd.wait` can listen with: psycopg 3 and psycopg2.

A :class:`Session` wraps one connection for one wait and does the few
things that differ between the drivers: run a statement, tell a
statement's SQLSTATE, and sleep on the socket until a notification comes.
Neither driver is imported until it is needed, so the package imports
without either.
"""

from __future__ import annotations

import contextlib
import math
import selectors
from typing import Any

from .errors import JobdError

_CHANNEL = "jobd_finished"

# The longest single sleep on the socket (the wait loops until its own
# timeout): selectors refuse a timeout of centuries.
_MAX_SLEEP = 3600.0
# libpq reads connect_timeout as a C int.
_INT_MAX = 2**31 - 1

_WATCH = "SELECT jobd.watch(%s::bigint)"
_SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %s, true)"
# The job's status, its log and its result as jsonb prints it (the
# result's numbers keep every digit through json.loads).
_ENDING = ("SELECT j.status, j.log, r.result::text "
           "FROM jobd.job AS j LEFT JOIN jobd.job_result AS r ON r.job_id = j.id "
           "WHERE j.id = %s::bigint")


class Session:
    """A connection :func:`jobd.wait` listens on, for the length of one wait.

    ``owned``: opened by the wait, closed at its end; otherwise the
    caller's, left as it was found (a LISTEN this session made is undone).
    """

    def __init__(self, conn: Any, owned: bool) -> None:
        self.conn = conn
        self.owned = owned
        self.payload = ""
        self.listened = False  # this session sent LISTEN (and must UNLISTEN)

    # -- what differs between drivers -------------------------------------
    def _cursor(self) -> Any:
        raise NotImplementedError

    def sqlstate(self, error: BaseException) -> str | None:
        """The SQLSTATE of a driver error, or None for anything else."""
        raise NotImplementedError

    def _take(self) -> bool:
        """Whether the notification for the job has come; forgets it."""
        raise NotImplementedError

    def _read(self) -> None:
        """Take what the server sent (the socket is readable)."""
        raise NotImplementedError

    def _forget(self) -> None:
        """Drop what the session added to the connection."""

    def _unlistened(self) -> None:
        """After this session's UNLISTEN: drop what the channel left behind."""

    # -- the steps of a wait ----------------------------------------------
    def _query(self, sql: str, params: Any = None) -> Any:
        cursor = self._cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchone() if cursor.description is not None else None
        finally:
            cursor.close()

    def listen(self, payload: str) -> None:
        """LISTEN jobd_finished, committed at once (the session is in autocommit)."""
        self.payload = payload
        row = self._query("SELECT %s = ANY (ARRAY(SELECT pg_listening_channels()))",
                          (_CHANNEL,))
        if not row[0]:
            self._query("LISTEN " + _CHANNEL)
            self.listened = True

    def watch(self, job_id: int, lock_wait: float) -> int | None:
        """``jobd.watch(id)`` in a transaction of its own that waits for the
        job's row at most ``lock_wait`` seconds (else SQLSTATE 55P03).
        Returns the job's status number, or None for no such job."""
        self._query("BEGIN")
        try:
            self._query(_SET_LOCK_TIMEOUT, (f"{max(1, round(lock_wait * 1000))}ms",))
            row = self._query(_WATCH, (job_id,))
            self._query("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                self._query("ROLLBACK")
            raise
        return row[0]

    def ending(self, job_id: int) -> tuple[int, str | None, str | None] | None:
        """(status, log, result text) of the job, or None if there is none."""
        row = self._query(_ENDING, (job_id,))
        return None if row is None else (row[0], row[1], row[2])

    def await_notification(self, timeout: float | None) -> bool:
        """Sleep until a notification comes or ``timeout`` seconds pass
        (``None``: for ever). True if it was the one for the job."""
        if self._take():  # it came with the last statement's answer
            return True
        if timeout is not None:
            timeout = min(timeout, _MAX_SLEEP)
        if wait_readable(self.conn.fileno(), timeout):
            self._read()
        return self._take()

    def close(self) -> None:
        """End the session: close an owned connection, else undo the LISTEN."""
        try:
            self._forget()
            if self.owned:
                self.conn.close()
            elif self.listened and not self.conn.closed:
                with contextlib.suppress(Exception):
                    self._query("UNLISTEN " + _CHANNEL)
                self._unlistened()
        finally:
            self.listened = False


class Psycopg3Session(Session):
    """psycopg 3: notifications through a notify handler.

    psycopg hands every notification that arrives with a statement's answer
    to the connection's notify handlers; while the session sleeps, the
    ones the socket brings are read off libpq and handed to the same
    handlers, the user's included.
    """

    def __init__(self, conn: Any, owned: bool) -> None:
        import psycopg
        import psycopg.rows

        if not conn.autocommit:
            raise JobdError("jobd.wait needs a connection in autocommit mode (LISTEN must "
                            "commit by itself): connect with autocommit=True, or pass a "
                            "conninfo string")
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise JobdError("jobd.wait needs a connection that is not inside a transaction")
        super().__init__(conn, owned)
        self._errors = psycopg.Error
        self._tuple_row = psycopg.rows.tuple_row
        self._heard = False
        conn.add_notify_handler(self._on_notify)

    def _on_notify(self, notify: Any) -> None:
        if notify.channel == _CHANNEL and notify.payload == self.payload:
            self._heard = True

    def _cursor(self) -> Any:
        return self.conn.cursor(row_factory=self._tuple_row)

    def sqlstate(self, error: BaseException) -> str | None:
        return getattr(error, "sqlstate", None) if isinstance(error, self._errors) else None

    def _take(self) -> bool:
        heard, self._heard = self._heard, False
        return heard

    def _read(self) -> None:
        pgconn = self.conn.pgconn
        with self.conn.lock:
            pgconn.consume_input()  # OperationalError if the connection is lost
            while (notify := pgconn.notifies()) is not None:
                if pgconn.notify_handler is not None:
                    pgconn.notify_handler(notify)

    def _forget(self) -> None:
        with contextlib.suppress(ValueError):
            self.conn.remove_notify_handler(self._on_notify)


class Psycopg2Session(Session):
    """psycopg2: notifications in ``conn.notifies`` after each statement or
    ``conn.poll()``; the job's are taken off the list, others left. When
    this session made the LISTEN itself, every ``jobd_finished`` one (other
    jobs' too, which the caller never asked for) is taken off as well, and
    once more after the UNLISTEN, so that none pile up on the connection."""

    def __init__(self, conn: Any, owned: bool) -> None:
        import psycopg2
        import psycopg2.extensions as ext

        if not conn.autocommit:
            raise JobdError("jobd.wait needs a connection in autocommit mode (LISTEN must "
                            "commit by itself): set conn.autocommit = True, or pass a "
                            "conninfo string")
        if conn.get_transaction_status() != ext.TRANSACTION_STATUS_IDLE:
            raise JobdError("jobd.wait needs a connection that is not inside a transaction")
        super().__init__(conn, owned)
        self._errors = psycopg2.Error
        self._plain_cursor = ext.cursor

    def _cursor(self) -> Any:
        return self.conn.cursor(cursor_factory=self._plain_cursor)

    def sqlstate(self, error: BaseException) -> str | None:
        return getattr(error, "pgcode", None) if isinstance(error, self._errors) else None

    def _take(self) -> bool:
        notifies = self.conn.notifies
        channel = [n for n in notifies if n.channel == _CHANNEL]
        ours = [n for n in channel if n.payload == self.payload]
        for n in channel if self.listened else ours:
            notifies.remove(n)
        return bool(ours)

    def _read(self) -> None:
        self.conn.poll()

    def _unlistened(self) -> None:
        notifies = self.conn.notifies
        for n in [n for n in notifies if n.channel == _CHANNEL]:
            notifies.remove(n)


def wait_readable(fileno: int, timeout: float | None) -> bool:
    """Sleep until ``fileno`` can be read or ``timeout`` seconds pass.

    A selector rather than select(): a web server's descriptors may be
    numbered past select()'s 1024.
    """
    with selectors.DefaultSelector() as selector:
        selector.register(fileno, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def _driver_of(conn: Any) -> str | None:
    for cls in type(conn).__mro__:
        top = cls.__module__.partition(".")[0]
        if top in ("psycopg", "psycopg2"):
            return top
    return None


def session_for(conn: Any) -> Session:
    """A session on the caller's psycopg 3 or psycopg2 connection."""
    driver = _driver_of(conn)
    if driver == "psycopg":
        import psycopg

        if isinstance(conn, psycopg.Connection):
            return Psycopg3Session(conn, owned=False)
    elif driver == "psycopg2":
        import psycopg2.extensions

        if isinstance(conn, psycopg2.extensions.connection):
            return Psycopg2Session(conn, owned=False)
    raise TypeError(
        "jobd.wait needs a psycopg 3 or psycopg2 connection in autocommit mode, or a "
        f"conninfo string; got {type(conn).__module__}.{type(conn).__name__} (it needs "
        "notifications, which DB-API 2 does not define; a pool's or ORM's wrapper will not "
        "do: pass the conninfo instead)")


def open_session(conninfo: str, left: float | None = None) -> Session:
    """A session on a new connection to ``conninfo``: psycopg 3 if it is
    installed, else psycopg2.

    ``left``: the seconds the wait has left, or None for no limit. Unless
    ``conninfo`` sets its own ``connect_timeout``, connecting is bounded by
    them, rounded up to whole seconds and at least 2 (libpq's resolution:
    its timer may fire up to a second early).
    """
    try:
        import psycopg
    except ImportError:
        psycopg = None
    if psycopg is not None:
        import psycopg.conninfo

        extra = _connect_timeout(conninfo, left, psycopg.conninfo.conninfo_to_dict)
        conn = psycopg.connect(conninfo, autocommit=True, **extra)
        return _owning(Psycopg3Session, conn)
    try:
        import psycopg2
        import psycopg2.extensions
    except ImportError:
        raise JobdError("jobd.wait with a conninfo string needs psycopg (3) or psycopg2: "
                        "apt install python3-psycopg, or pip install 'jobd[psycopg]'") from None
    extra = _connect_timeout(conninfo, left, psycopg2.extensions.parse_dsn)
    conn = psycopg2.connect(conninfo, **extra)
    conn.autocommit = True
    return _owning(Psycopg2Session, conn)


def _connect_timeout(conninfo: str, left: float | None, parse: Any) -> dict[str, str]:
    """``{"connect_timeout": ...}`` for the time ``left``, or ``{}`` when
    there is no limit or ``conninfo`` sets one (or cannot be parsed: then
    connecting says what is wrong with it)."""
    if left is None:
        return {}
    try:
        if "connect_timeout" in parse(conninfo):
            return {}
    except Exception:
        return {}
    return {"connect_timeout": str(min(_INT_MAX, max(2, math.ceil(left))))}


def _owning(kind: type, conn: Any) -> Session:
    try:
        return kind(conn, owned=True)
    except BaseException:
        conn.close()
        raise
