"""Offline tooling around runs: sweep manifests, reports, plots and the reference learning runs.

Kept apart from the runtime core (coordinator, workers, learners, replay, planner service) so the
runtime's files are the ones a reader of ``distributed/`` sees first.
"""
