"""The example application of examples/launchpad_app: its jobs live in app.jobs."""
