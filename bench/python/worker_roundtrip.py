"""How long one no-op job takes through one Python worker, sequentially:
this script plays the daemon over a socket pair (python -m jobd.worker,
descriptor 3), sends 20,000 job frames one after another and reads each
outcome. No database: the job (benchjobs.NoopJob) never opens one.

Run from the repository's top directory: /usr/bin/python3 bench/python/worker_roundtrip.py
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

TOP = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "python"))
from jobd.worker import encode_frame  # noqa: E402

JOBS = 20000


def main() -> None:
    daemon, worker = socket.socketpair()
    env = dict(os.environ, PYTHONPATH=f"{TOP / 'python'}:{TOP / 'bench' / 'python'}")
    child = subprocess.Popen([sys.executable, "-m", "jobd.worker"], pass_fds=(3,),
                             preexec_fn=lambda: os.dup2(worker.fileno(), 3), env=env)
    worker.close()

    def send(message: dict) -> None:
        daemon.sendall(encode_frame(message))

    def read() -> dict:
        length = int.from_bytes(daemon.recv(4, socket.MSG_WAITALL), "big")
        return json.loads(daemon.recv(length, socket.MSG_WAITALL))

    send({"op": "hello", "section": {"name": "py", "handler": "python", "job_type": "py",
                                     "dbuser": "", "timeout_ms": 60000, "kill_grace_ms": 5000,
                                     "memory_limit": None,
                                     "handler_options": {"module": "benchjobs"}},
          "mail": {}, "conninfo": "", "job_conninfo": "", "pooled": False, "owner": "bench",
          "log_level": "info", "daemon_pid": os.getpid()})
    started = time.perf_counter()
    for i in range(JOBS):
        send({"op": "job", "job": {"id": i, "job_type": "py", "section": "py", "attempt": 1,
                                   "max_retries": 0, "priority": 0, "target": None,
                                   "json_data": "{}", "payload_size": 2, "max_result": 1 << 20,
                                   "checkpoint": None, "claimed_at_ns": 0}})
        outcome = read()
        assert outcome["op"] == "outcome" and outcome["outcome"]["kind"] == "completed", outcome
    took = time.perf_counter() - started
    print(f"{JOBS / took:.0f} jobs/s, {took / JOBS * 1e6:.0f} us a job round trip")
    daemon.close()
    child.wait(30)


if __name__ == "__main__":
    main()
