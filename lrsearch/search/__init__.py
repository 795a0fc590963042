"""The search: schedule families, search spaces, objectives, sampler and pruner choice, the range
test's maths. No I/O.
"""
