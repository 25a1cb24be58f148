"""Fixtures of the jobd Python client's tests: a real PostgreSQL, never a fake.

The server is the one the standard PG* variables name (pg_virtualenv sets
them). Each test module gets a database of its own, jobd_py_<random>, set
up by the built binary's `jobd migrate` (${JOBD_BINARY}, default
build/asan/daemon/jobd in the repository) and dropped at the end.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pathlib
import secrets
import subprocess
import time
from typing import Any, Callable, Iterator

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]

#: The drivers installed here, psycopg 3 first: each test that takes the
#: `driver` fixture runs once per driver.
DRIVERS = [name for name in ("psycopg", "psycopg2") if importlib.util.find_spec(name)]
# Imported once here, so that a test may hide one from jobd (sys.modules)
# and still reach the database through it.
_MODULES = {name: importlib.import_module(name) for name in DRIVERS}


def pytest_configure(config: pytest.Config) -> None:
    if not DRIVERS:
        raise pytest.UsageError(
            "jobd's Python tests need psycopg (3) or psycopg2 to reach PostgreSQL: "
            "apt install python3-psycopg python3-psycopg2")


def connect(driver: str, conninfo: str, autocommit: bool = False, **kwargs: Any) -> Any:
    """A new connection of `driver` ("psycopg" or "psycopg2")."""
    if driver == "psycopg":
        return _MODULES["psycopg"].connect(conninfo, autocommit=autocommit, **kwargs)
    conn = _MODULES["psycopg2"].connect(conninfo, **kwargs)
    conn.autocommit = autocommit
    return conn


class Database:
    """One test database: its conninfo, and SQL run on it from the side."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.conninfo = f"dbname={name}"
        self._driver = DRIVERS[0]

    def connect(self, driver: str | None = None, autocommit: bool = False, **kwargs: Any) -> Any:
        return connect(driver or self._driver, self.conninfo, autocommit, **kwargs)

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        """The rows of one statement, run in a transaction of its own."""
        return self.transaction((sql, params))

    def value(self, sql: str, *params: Any) -> Any:
        """The first column of the one row a statement returns."""
        rows = self.rows(sql, *params)
        assert len(rows) == 1, f"{sql!r} returned {len(rows)} rows"
        return rows[0][0]

    def transaction(self, *statements: tuple[str, tuple]) -> list[tuple]:
        """Run (sql, params) statements in one transaction and commit;
        the rows of the last one (none if it returns none)."""
        conn = self.connect()
        try:
            cursor = conn.cursor()
            rows: list[tuple] = []
            for sql, params in statements:
                cursor.execute(sql, params or None)
                rows = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
            conn.commit()
            return rows
        finally:
            conn.close()

    def waits_for(self, sql: str, *params: Any, timeout: float = 10.0) -> Any:
        """Until `sql` returns true, reading it every 10 ms on one autocommit
        connection: for a state that another thread's connection commits (a
        watch), which sends no event. Returns the true value."""
        deadline = time.monotonic() + timeout
        conn = self.connect(autocommit=True)
        try:
            cursor = conn.cursor()
            while True:
                cursor.execute(sql, params or None)
                row = cursor.fetchone()
                if row is not None and row[0]:
                    return row[0]
                if time.monotonic() > deadline:
                    raise AssertionError(f"{sql} {params} was still not true after {timeout} s")
                time.sleep(0.01)
        finally:
            conn.close()


def _admin_conninfo() -> str:
    # pg_virtualenv sets PGDATABASE; without it libpq would try a database
    # named after the user.
    return "" if os.environ.get("PGDATABASE") else "dbname=postgres"


def _jobd_binary() -> pathlib.Path:
    given = os.environ.get("JOBD_BINARY") or "build/asan/daemon/jobd"
    path = pathlib.Path(given)
    if not path.is_absolute() and not path.exists():
        path = REPOSITORY / path
    if not path.exists():
        raise RuntimeError(f"no jobd binary at {given} (nor under {REPOSITORY}): build it "
                           "(scripts/test.sh does) or point JOBD_BINARY at one")
    return path


@pytest.fixture(scope="module")
def db() -> Iterator[Database]:
    """A fresh database migrated by `jobd migrate`, dropped after the module."""
    name = f"jobd_py_{secrets.token_hex(6)}"
    try:
        admin = connect(DRIVERS[0], _admin_conninfo(), autocommit=True)
    except Exception as e:
        raise RuntimeError(f"cannot reach PostgreSQL through the PG* environment (run the "
                           f"tests under pg_virtualenv): {e}") from e
    try:
        admin.cursor().execute(f"CREATE DATABASE {name}")
        database = Database(name)
        command = [str(_jobd_binary()), "--database", database.conninfo, "--config",
                   "/dev/null", "migrate"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n"
                               f"{done.stdout}{done.stderr}")
        yield database
    finally:
        with contextlib.suppress(Exception):
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    """Each installed driver in turn: "psycopg" (3), "psycopg2"."""
    return request.param


@pytest.fixture
def connections(db: Database) -> Iterator[Callable[..., Any]]:
    """A factory of connections to the test database, closed after the test."""
    made: list[Any] = []

    def make(driver: str, autocommit: bool = False, **kwargs: Any) -> Any:
        conn = db.connect(driver, autocommit, **kwargs)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        with contextlib.suppress(Exception):
            conn.close()
