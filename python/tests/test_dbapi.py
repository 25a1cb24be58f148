"""Placeholders for each DB-API paramstyle, and finding a driver's style
(no database)."""

from __future__ import annotations

import sqlite3

import pytest

from jobd import _dbapi

TEMPLATE = "SELECT jobd.enqueue(job_type => {}::text, priority => {}::integer)"


@pytest.mark.parametrize("style, sql, params", [
    ("format", "SELECT jobd.enqueue(job_type => %s::text, priority => %s::integer)",
     ["noop", 5]),
    ("pyformat", "SELECT jobd.enqueue(job_type => %(p0)s::text, priority => %(p1)s::integer)",
     {"p0": "noop", "p1": 5}),
    ("qmark", "SELECT jobd.enqueue(job_type => ?::text, priority => ?::integer)", ["noop", 5]),
    ("numeric", "SELECT jobd.enqueue(job_type => :1::text, priority => :2::integer)",
     ["noop", 5]),
    ("named", "SELECT jobd.enqueue(job_type => :p0::text, priority => :p1::integer)",
     {"p0": "noop", "p1": 5}),
])
def test_each_paramstyle_gets_its_placeholders(style, sql, params):
    """render() writes the style's placeholders and the parameters' shape."""
    assert _dbapi.render(TEMPLATE, ["noop", 5], style) == (sql, params)


def test_an_unknown_paramstyle_is_refused():
    with pytest.raises(ValueError, match="unknown DB-API paramstyle"):
        _dbapi.render(TEMPLATE, ["noop", 5], "dollar")


def test_the_style_is_read_from_the_driver_module():
    """sqlite3 (qmark) stands for any driver that is not psycopg."""
    conn = sqlite3.connect(":memory:")
    try:
        assert _dbapi.paramstyle(conn) == "qmark"
    finally:
        conn.close()


def test_a_proxy_is_looked_through():
    """A pool's proxy (SQLAlchemy's keeps the driver's connection as
    dbapi_connection, Storm's as _raw_connection) has its driver's style."""
    conn = sqlite3.connect(":memory:")

    class Proxy:
        def __init__(self, inner):
            self.dbapi_connection = inner

        def cursor(self):
            return self.dbapi_connection.cursor()

    try:
        assert _dbapi.paramstyle(Proxy(conn)) == "qmark"
        assert _dbapi.paramstyle(object()) == "format"  # the PostgreSQL drivers' style
    finally:
        conn.close()


def test_first_value_reads_tuples_and_dicts():
    assert _dbapi.first_value((7,)) == 7
    assert _dbapi.first_value({"id": 7}) == 7
    assert _dbapi.first_value(None) is None
