#!/usr/bin/python3
"""Enqueue the example's jobs the way a web request does: in its own transaction.

A request that gives karma records the fact in the application's tables and
enqueues the jobs that follow from it, in one transaction: the jobs exist
if and only if the request commits. jobd's daemon is woken at that commit
and runs them (jobd.conf beside this file).

    PYTHONPATH=python python3 examples/launchpad_app/enqueue.py --database dbname=karma \\
        mark 10 --webhook http://localhost:8000/hook --wait
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import jobd


def connect(conninfo: str) -> Any:
    """A connection of psycopg 3, or psycopg2 when that is what is installed."""
    try:
        import psycopg
    except ImportError:
        import psycopg2

        return psycopg2.connect(conninfo)
    return psycopg.connect(conninfo)


def give_karma(conn: Any, person: str, points: int, webhook: str | None) -> list[int]:
    """The request's work, inside the caller's transaction (never committed
    here): the jobs it enqueues commit with whatever else the request
    wrote, or vanish with it."""
    job_ids = [jobd.enqueue(conn, "record_karma", {"person": person, "points": points},
                            requester=f"web request: karma for {person}")]
    if webhook:
        # One waiting notification per hook at a time: a burst of karma
        # sends one call, "karma changed" (jobd.acquire returns the waiting one).
        job_ids.append(jobd.enqueue(conn, "notify_webhook",
                                    {"url": webhook, "payload": {"event": "karma_changed"}},
                                    target=f"webhook:{webhook}", unique=True,
                                    requester=f"web request: karma for {person}"))
    return job_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="", help="conninfo (default: the PG* variables)")
    parser.add_argument("person")
    parser.add_argument("points", type=int)
    parser.add_argument("--webhook", help="also POST to this URL")
    parser.add_argument("--wait", action="store_true", help="wait for the jobs to finish")
    args = parser.parse_args(argv)

    conn = connect(args.database)
    try:
        job_ids = give_karma(conn, args.person, args.points, args.webhook)
        conn.commit()  # the request's transaction: from here on the jobs exist
    except BaseException:
        conn.rollback()  # and here they never did
        raise
    finally:
        conn.close()
    print("enqueued", " ".join(str(i) for i in job_ids))

    status = 0
    if args.wait:
        for job_id in job_ids:
            try:
                done = jobd.wait(args.database, job_id, timeout=120)
                print(f"job {job_id}: {done.status} {done.result}")
            except (jobd.JobFailed, jobd.WaitTimeout) as e:
                print(f"job {job_id}: {e}")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
