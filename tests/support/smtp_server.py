#!/usr/bin/env python3
"""A real SMTP server for the tests (Debian's python3-aiosmtpd).

Usage: smtp_server.py PORT OUTDIR

Every accepted message is written to OUTDIR/NNNN.json as {"from", "rcpt",
"data"}. Recipients steer failures, so that a test can ask for them:
  tempfail-*@...   RCPT answered 451 (try again later)
  reject-*@...     RCPT answered 550 (no such user)
  flaky-*@...      DATA answered 451 the first time (the message is kept
                   as OUTDIR/rejected-NNNN.json), accepted after that
Prints "ready" on stdout once it listens.
"""
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0
        self.flaky_seen = set()

    def _write(self, name, envelope):
        path = os.path.join(self.outdir, name)
        with open(path + ".tmp", "w") as out:
            json.dump({"from": envelope.mail_from, "rcpt": envelope.rcpt_tos,
                       "data": envelope.content.decode("utf-8", "replace")}, out)
        os.rename(path + ".tmp", path)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("tempfail-"):
            return "451 4.3.0 Try again later"
        if address.startswith("reject-"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        flaky = [a for a in envelope.rcpt_tos if a.startswith("flaky-")]
        if flaky and flaky[0] not in self.flaky_seen:
            self.flaky_seen.add(flaky[0])
            self._write("rejected-%04d.json" % self.count, envelope)
            return "451 4.3.0 Not now"
        self._write("%04d.json" % self.count, envelope)
        return "250 Message accepted"


def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Handler(outdir), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
