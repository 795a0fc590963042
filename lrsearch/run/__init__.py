"""Running a study: the plan, workers and their slots, one trial, range-test runs, checkpoints and
the storage.
"""
