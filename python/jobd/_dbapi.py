"""What jobd needs of a DB-API 2 connection it did not open: its paramstyle.

The enqueue functions use nothing but ``conn.cursor()``,
``cursor.execute(sql, params)``, ``cursor.fetchone()`` and
``cursor.close()``, so any PEP 249 connection to PostgreSQL works:
psycopg2's, psycopg 3's, and the ones Storm and SQLAlchemy hand out (a
pool's proxy of one of those). Only the placeholders differ between
drivers; they are read from the driver module's ``paramstyle``. (psycopg
3's cursor is asked for tuples, ``row_factory=tuple_row``, as its
connection may make other rows by default.)
"""

from __future__ import annotations

import sys
from typing import Any, Iterator, Sequence

STYLES = ("format", "pyformat", "qmark", "numeric", "named")

# Attributes under which connection proxies keep the driver's connection:
# SQLAlchemy's pool proxy (`dbapi_connection` since 1.4, `connection`
# before), Storm's Connection (`_raw_connection`).
_WRAPPED = ("dbapi_connection", "_raw_connection", "connection")


def _chain(conn: Any) -> Iterator[Any]:
    """``conn``, then the connection each proxy in turn keeps (above)."""
    seen: set[int] = set()
    obj = conn
    while obj is not None and id(obj) not in seen:
        seen.add(id(obj))
        yield obj
        obj = next((getattr(obj, name, None) for name in _WRAPPED
                    if getattr(obj, name, None) is not None), None)


def paramstyle(conn: Any) -> str:
    """The paramstyle of ``conn``'s driver module.

    Looks at the module of the connection's class and of its bases (a
    subclass of psycopg2's connection declared in the application), then
    through the proxies above. A connection whose driver says nothing is
    taken to use ``format`` (``%s``), as every PostgreSQL driver in wide
    use does.
    """
    for obj in _chain(conn):
        for cls in type(obj).__mro__:
            module = sys.modules.get(cls.__module__.partition(".")[0])
            style = getattr(module, "paramstyle", None)
            if style in STYLES:
                return style
    return "format"


def cursor_of(conn: Any) -> Any:
    """A new cursor of ``conn``, or of the DB-API connection it wraps.

    Looks through the proxies above as :func:`paramstyle` does: besides a
    DB-API connection, accepts an object that has no ``cursor()`` of its
    own but keeps a connection that has (SQLAlchemy's ``Connection``, which
    ``session.connection()`` returns; Storm's ``Connection``). A psycopg 3
    connection, the one given or one a proxy keeps, is asked for a cursor
    of plain tuples whatever its ``row_factory`` (``dict_row``,
    ``class_row``).
    """
    chain = list(_chain(conn))
    psycopg = sys.modules.get("psycopg")  # imported if such a connection exists
    connection_class = getattr(psycopg, "Connection", None)
    if isinstance(connection_class, type):
        for obj in chain:
            if isinstance(obj, connection_class):
                from psycopg.rows import tuple_row

                return obj.cursor(row_factory=tuple_row)
    for obj in chain:
        if callable(getattr(obj, "cursor", None)):
            return obj.cursor()
    raise TypeError(
        f"jobd: expected a DB-API 2 connection (with a cursor() method), got {type(conn).__name__}")


def render(template: str, values: Sequence[Any], style: str) -> tuple[str, Any]:
    """``template`` with each ``{}`` replaced by a placeholder of ``style``.

    Returns the statement and the parameters in the shape that style
    takes: a list for ``format``, ``qmark`` and ``numeric``, a dict for
    ``pyformat`` and ``named``. The template must hold no other braces and,
    for the ``%`` styles, no ``%``.
    """
    if style == "format":
        marks = ["%s"] * len(values)
    elif style == "pyformat":
        marks = [f"%(p{i})s" for i in range(len(values))]
    elif style == "qmark":
        marks = ["?"] * len(values)
    elif style == "numeric":
        marks = [f":{i + 1}" for i in range(len(values))]
    elif style == "named":
        marks = [f":p{i}" for i in range(len(values))]
    else:
        raise ValueError(f"jobd: unknown DB-API paramstyle {style!r} (expected one of {STYLES})")
    sql = template.format(*marks)
    if style in ("pyformat", "named"):
        return sql, {f"p{i}": v for i, v in enumerate(values)}
    return sql, list(values)


def first_value(row: Any) -> Any:
    """The first column of a fetched row, whatever the cursor's row type.

    Tuples and lists (the default), and dict-like rows (psycopg 3's
    ``dict_row``, psycopg2's ``RealDictCursor``) alike.
    """
    if row is None:
        return None
    if hasattr(row, "keys") and hasattr(row, "values"):
        return next(iter(row.values()))
    return row[0]
