"""An `exec` job that runs benchjobs' job class: one interpreter per job,
with json_data on stdin and the job's id and type in the environment."""

import json
import os
import sys

from jobd.job import JobContext

import benchjobs

context = JobContext(int(os.environ["JOBD_JOB_ID"]), os.environ["JOBD_JOB_TYPE"],
                     json.load(sys.stdin))
benchjobs.make_job(context).run()
