"""Enqueueing jobs from an application's own transaction.

:func:`enqueue` and :func:`acquire` call ``jobd.enqueue`` and
``jobd.acquire`` (docs/schema.md) on the caller's connection, inside the
caller's transaction, and never commit: the job exists if and only if the
caller's transaction commits, and jobd's trigger wakes a daemon at that
commit. Called from a web request, they add one statement to the request's
transaction.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any, Iterable

from . import _dbapi
from .errors import PayloadError

# jobd.job.priority is a smallint; max_retries an integer >= 0.
_SMALLINT = (-32768, 32767)
_INT_MAX = 2**31 - 1
# The longest delay: 100 years (far inside PostgreSQL's interval and
# timestamptz, whose overflow would fail the caller's transaction).
_MAX_DELAY = 100 * 365.25 * 86400

# A \u0000 escape that json.dumps wrote for a NUL character (preceded by an
# even number of backslashes, so not the text "\\u0000" of a string).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def check_max_retries(value: Any, name: str, expected: str = "an int") -> int:
    """``value`` as a ``max_retries``: an int from 0 to 2**31 - 1 (what
    PostgreSQL's integer holds); else TypeError or ValueError naming
    ``name``. Used by enqueue() and by the worker for a job class's."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")
    if not 0 <= value <= _INT_MAX:
        raise ValueError(f"{name} must be between 0 and {_INT_MAX}, got {value}")
    return value


def enqueue(conn: Any, job_type: str, data: Any = None, *, target: str | None = None,
            unique: bool = False, at: datetime.datetime | None = None,
            delay: datetime.timedelta | float | None = None, priority: int = 0,
            max_retries: int | None = None, requester: str | None = None,
            depends_on: Iterable[int] | None = None, on_parent_failure: str = "fail",
            batch: int | None = None) -> int:
    """Insert a job in the caller's transaction and return its id.

    ``conn`` is any DB-API 2 connection to a database that ``jobd migrate``
    has set up: psycopg2's, psycopg 3's, or the one under a Storm store or a
    SQLAlchemy session (``session.connection().connection``). The job is
    written with one statement on it, in whatever transaction is open there;
    nothing is committed, so the job appears when the caller commits and
    never if it rolls back (on a connection in autocommit mode the
    statement commits by itself).

    - ``job_type``: the type a section of ``jobd.conf`` serves.
    - ``data``: the job's payload (``json_data``), anything ``json.dumps``
      can write; ``None`` stores ``{}``. A value it cannot write raises
      :class:`jobd.PayloadError` before anything is sent.
    - ``target``: the key that serialises jobs (one RUNNING job per target).
    - ``unique``: call ``jobd.acquire`` instead (needs ``target``): the
      WAITING job of this type and target if there is one (its id is
      returned and ``data`` and the other settings are not applied to it),
      else a new one. Call it in READ COMMITTED, PostgreSQL's default.
    - ``at``: a timezone-aware datetime before which the job does not start.
    - ``delay``: a ``timedelta`` or a number of seconds from now (the
      database's ``now()``, the start of the transaction) before which the
      job does not start, at most 100 years. Not with ``at``.
    - ``priority``: lower runs first (SPEC), -32768 to 32767.
    - ``max_retries``: how many times a retry error may requeue the job;
      ``None`` leaves it to the database's default (0).
    - ``requester``: free text recorded with the job (who asked for it).
    - ``depends_on``: ids of jobs this one waits for (``jobd.add_dependencies``):
      it stays WAITING, held, until each of them is COMPLETED. Jobs made
      earlier in the same transaction may be named, so a whole graph is
      enqueued at once; an edge that would close a cycle is refused.
    - ``on_parent_failure``: what a parent that ends FAILED does to this job:
      ``"fail"`` (it ends FAILED, ``ParentFailed``), ``"cancel"`` (it ends
      FAILED, ``Cancelled``) or ``"run"`` (it runs anyway).
    - ``batch``: the id of an open batch (:func:`create_batch`) to join.

    Raises :class:`ValueError` or :class:`TypeError` for arguments out of
    range or of the wrong type, :class:`jobd.PayloadError` for data that is
    not JSON, all before anything is sent; the driver's own exceptions for
    errors of the statement (then the caller's transaction has failed).
    """
    _check_text("job_type", job_type, required=True)
    _check_text("target", target)
    _check_text("requester", requester)
    if unique and target is None:
        raise ValueError("jobd: unique=True needs a target (jobd.acquire serialises on it)")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"jobd: priority must be an int, got {type(priority).__name__}")
    if not _SMALLINT[0] <= priority <= _SMALLINT[1]:
        raise ValueError(f"jobd: priority must be between {_SMALLINT[0]} and {_SMALLINT[1]}, "
                         f"got {priority}")
    if max_retries is not None:
        check_max_retries(max_retries, "jobd: max_retries", "an int or None")
    parents = _job_ids("depends_on", depends_on)
    if on_parent_failure not in ("fail", "cancel", "run"):
        raise ValueError("jobd: on_parent_failure must be 'fail', 'cancel' or 'run', "
                         f"got {on_parent_failure!r}")
    if batch is not None:
        _job_ids("batch", [batch])

    # (parameter name, SQL expression with {} for the placeholder, value);
    # a parameter left out takes the SQL function's default.
    args: list[tuple[str, str, Any]] = [("job_type", "{}::text", job_type)]
    if data is not None:
        args.append(("json_data", "{}::jsonb", payload_json(data)))
    start = _scheduled_start(at, delay)
    if start is not None:
        args.append(("scheduled_start",) + start)
    if priority != 0:
        args.append(("priority", "{}::integer", priority))
    if target is not None:
        args.append(("target", "{}::text", target))
    if max_retries is not None:
        args.append(("max_retries", "{}::integer", max_retries))
    if requester is not None:
        args.append(("requester", "{}::text", requester))

    function = "jobd.acquire" if unique else "jobd.enqueue"
    call = f"{function}(" + ", ".join(f"{name} => {expr}" for name, expr, _ in args) + ")"
    values = [value for _, _, value in args]
    # Schema 19, in the same statement: the job joins its batch, then is
    # held, before anything else can see it (in that order, so that a parent
    # that has already failed fails it as a member of the batch).
    if batch is not None:
        call = f"jobd.add_to_batch({{}}::bigint, {call})"
        values.insert(0, batch)
    if parents:
        call = f"jobd.add_dependencies({call}, {{}}::text::bigint[], {{}}::text)"
        # An array literal as text: every DB-API driver can pass that.
        values += ["{" + ",".join(str(p) for p in parents) + "}", on_parent_failure]
    job_id = _one_value(conn, f"SELECT {call} AS id", values)
    if job_id is None:
        raise RuntimeError(f"jobd: {function} returned no id")
    return int(job_id)


def acquire(conn: Any, job_type: str, target: str, data: Any = None, *,
            at: datetime.datetime | None = None,
            delay: datetime.timedelta | float | None = None, priority: int = 0,
            max_retries: int | None = None, requester: str | None = None) -> int:
    """Return the WAITING job of ``job_type`` and ``target``, or make one.

    ``jobd.acquire`` in the caller's transaction, as
    ``enqueue(conn, job_type, data, target=target, unique=True, ...)``: a
    burst of calls for one target leaves one waiting job, whose id each
    returns. The job found is returned as it is (``data`` and the settings
    apply to a job it makes). The job stays locked until the caller commits
    (no daemon claims it before the caller's other changes are visible), so
    commit soon. Call it in READ COMMITTED (PostgreSQL's default).
    """
    if target is None:
        raise ValueError("jobd: acquire needs a target")
    return enqueue(conn, job_type, data, target=target, unique=True, at=at, delay=delay,
                   priority=priority, max_retries=max_retries, requester=requester)


def create_batch(conn: Any, callback_type: str, data: Any = None, *,
                 fire_on: str = "complete") -> int:
    """Open a batch in the caller's transaction and return its id.

    Jobs join it with ``enqueue(..., batch=id)``, in this transaction or
    later ones, until :func:`close_batch`. Once it is closed and every job
    in it has ended, one job of ``callback_type`` is enqueued, exactly once,
    with ``data`` (a dict, ``{}`` when None) plus ``{"batch": {"id",
    "total", "completed", "failed"}}``. ``fire_on="success"`` enqueues it
    only if every job ended COMPLETED.
    """
    _check_text("callback_type", callback_type, required=True)
    if fire_on not in ("complete", "success"):
        raise ValueError(f"jobd: fire_on must be 'complete' or 'success', got {fire_on!r}")
    if data is not None and not isinstance(data, dict):
        raise TypeError(f"jobd: batch data must be a dict, got {type(data).__name__}")
    return int(_one_value(conn, "SELECT jobd.create_batch({}::text, {}::jsonb, {}::text)",
                          [callback_type, payload_json(data or {}), fire_on]))


def close_batch(conn: Any, batch: int) -> int | None:
    """Close a batch in the caller's transaction: no job can join it any
    more. Returns the callback job's id if every job had already ended (so
    this call enqueued it), else None: the end of its last job will."""
    _job_ids("batch", [batch])
    value = _one_value(conn, "SELECT jobd.close_batch({}::bigint)", [batch])
    return None if value is None else int(value)


def _one_value(conn: Any, template: str, values: list[Any]) -> Any:
    """The first column of the one row of ``template`` (``{}`` for each of
    ``values``), run on a cursor of ``conn`` in its open transaction."""
    sql, params = _dbapi.render(template, values, _dbapi.paramstyle(conn))
    cursor = _dbapi.cursor_of(conn)
    try:
        cursor.execute(sql, params)
        return _dbapi.first_value(cursor.fetchone())
    finally:
        cursor.close()


def _job_ids(name: str, ids: Iterable[int] | None) -> list[int]:
    """``ids`` as a list of positive ints (bigint); TypeError or ValueError
    naming ``name`` otherwise."""
    if ids is None:
        return []
    if isinstance(ids, (str, bytes, int)):
        raise TypeError(f"jobd: {name} must be a list of job ids, got {type(ids).__name__}")
    out = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"jobd: {name}: ids must be ints, got {type(value).__name__}")
        if not 1 <= value < 2**63:
            raise ValueError(f"jobd: {name}: ids are from 1 to 2**63 - 1, got {value}")
        out.append(value)
    return out


def payload_json(data: Any) -> str:
    """``data`` as the JSON text jobd stores in ``json_data``.

    Raises :class:`jobd.PayloadError`, saying why, when ``data`` holds a
    value JSON cannot represent or PostgreSQL's jsonb cannot store.
    """
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except TypeError as e:
        # json says "Object of type set is not JSON serializable".
        raise PayloadError(f"jobd: the job's data is not JSON: {e}; convert it to "
                           f"dicts, lists, strings, numbers, booleans and None first") from e
    except ValueError as e:
        # NaN or infinity ("Out of range float values are not JSON
        # compliant"), or a cycle ("Circular reference detected").
        raise PayloadError(f"jobd: the job's data is not JSON: {e}") from e
    if _NUL_ESCAPE.search(text):
        raise PayloadError("jobd: the job's data holds a string with the character U+0000, "
                           "which PostgreSQL's jsonb cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise PayloadError(f"jobd: the job's data holds a string that is not valid Unicode "
                           f"(a lone surrogate, {text[e.start]!r}); jsonb cannot store it") from e
    return text


def _check_text(name: str, value: Any, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise TypeError(f"jobd: {name} must be a str, got {type(value).__name__}")
    if required and not value:
        raise ValueError(f"jobd: {name} must not be empty")
    # Refused here rather than by PostgreSQL (text holds no U+0000) or the
    # driver's encoder, which would fail the caller's transaction.
    if "\x00" in value:
        raise ValueError(f"jobd: {name} holds the character U+0000, which PostgreSQL's "
                         "text cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"jobd: {name} is not valid Unicode (a lone surrogate, "
                         f"{value[e.start]!r})") from e


def _scheduled_start(at: Any, delay: Any) -> tuple[str, Any] | None:
    """The SQL expression and value for scheduled_start, or None for now."""
    if at is not None and delay is not None:
        raise ValueError("jobd: give at or delay, not both")
    if at is not None:
        if not isinstance(at, datetime.datetime):
            raise TypeError(f"jobd: at must be a datetime, got {type(at).__name__}")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("jobd: at must be timezone-aware (for example "
                             "datetime.now(timezone.utc) + timedelta(hours=1))")
        return "{}::timestamptz", at
    if delay is not None:
        if isinstance(delay, datetime.timedelta):
            seconds = delay.total_seconds()
        elif isinstance(delay, (int, float)) and not isinstance(delay, bool):
            try:
                seconds = float(delay)
            except OverflowError:  # an int past float's range
                seconds = math.inf
        else:
            raise TypeError(f"jobd: delay must be a timedelta or a number of seconds, "
                            f"got {type(delay).__name__}")
        if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_DELAY:
            raise ValueError(f"jobd: delay must be a finite number of seconds between 0 and "
                             f"{_MAX_DELAY:.0f} (100 years), got {delay!r}")
        # The database's clock, as jobd's own --delay and SQL's
        # `now() + interval` use, not this host's.
        return "now() + make_interval(secs => {}::double precision)", seconds
    return None
