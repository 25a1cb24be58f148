"""The reliability harness's Python load (tests/reliability/harness.cpp,
section [py], runner = python): each job inserts its id into `effects` on
its own connection, committed with its COMPLETED mark or not at all, so
the harness's exactly-once checks cover Python workers too."""

from jobd.job import BaseRunnableJob


class EffectJob(BaseRunnableJob):
    max_retries = None  # the section's max_retries
    retry_delay = None  # and its retry_delay

    def run(self) -> None:
        self.context.connection.cursor().execute(
            "INSERT INTO effects (job_id) VALUES (%s)", (self.context.id,))


def make_job(context):
    return EffectJob(context)
