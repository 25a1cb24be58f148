"""The benchmark's Python jobs (bench/jobd_bench.cpp, scenario "python").

`make_job` is what a `runner = python` section calls in its long-lived
workers; exec_noop.py runs the same code in a fresh interpreter per job,
as an `exec` section would.
"""

from jobd.job import BaseRunnableJob


class NoopJob(BaseRunnableJob):
    """Does nothing: what is measured is jobd's cost of running Python."""

    def run(self) -> None:
        pass


def make_job(context):
    return NoopJob(context)
