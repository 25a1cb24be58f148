"""jobd's exceptions survive pickling (a worker process's exception sent
back to its parent, multiprocessing, concurrent.futures), no database."""

from __future__ import annotations

import copy
import pickle

import pytest

import jobd

RESULT = jobd.Result(7, "FAILED", {"n": 1}, "Scheduling retry due to X.\nboom: it broke\n")


@pytest.mark.parametrize("error", [
    jobd.JobFailed(RESULT),
    jobd.WaitTimeout(7, 2.5, "RUNNING"),
    jobd.WaitTimeout(7, 0, None),
    jobd.JobNotFound(7),
    jobd.JobNotFound(7, "job 7 was deleted"),
    jobd.PayloadError("jobd: the job's data is not JSON: x"),
    jobd.JobdError("jobd: something"),
], ids=lambda e: type(e).__name__)
def test_a_pickled_exception_comes_back_the_same(error):
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(error, protocol))
        assert type(back) is type(error)
        assert str(back) == str(error)
        assert back.args == error.args
        assert vars(back) == vars(error)
    assert vars(copy.copy(error)) == vars(error)


def test_the_attributes_come_back():
    failed = pickle.loads(pickle.dumps(jobd.JobFailed(RESULT)))
    assert (failed.result, failed.job_id) == (RESULT, 7)
    assert str(failed) == "job 7 FAILED: boom: it broke"
    timeout = pickle.loads(pickle.dumps(jobd.WaitTimeout(7, 2.5, "RUNNING")))
    assert (timeout.job_id, timeout.timeout, timeout.status) == (7, 2.5, "RUNNING")
    assert str(timeout) == "job 7 is still RUNNING after 2.5 s"
    missing = pickle.loads(pickle.dumps(jobd.JobNotFound(7)))
    assert missing.job_id == 7
    assert str(missing) == "no job with id 7 (or it was deleted)"


def test_a_note_comes_back_too():
    error = jobd.WaitTimeout(7, 1, None)
    error.add_note("while waiting for the merge")
    assert pickle.loads(pickle.dumps(error)).__notes__ == ["while waiting for the merge"]
