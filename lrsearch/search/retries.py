"""Optuna's retries of stale trials, as a search counts its trials.

A worker that dies (or is stopped) leaves its trial RUNNING; Optuna's
RetryHeartbeatStaleTrialCallback fails it and queues a retry with its parameters and its
intermediate values, marking the retry with Optuna's own system attributes below (lrsearch's
attributes are in lrsearch.monitor.records). The failed trial and its retry are one trial of
the search: the retry counts toward ``--trials`` (lrsearch.run.workers.budget), and at a
pruner's rung (lrsearch.search.pruners.TopKRungPruner) only the retry is a rival.
"""

from __future__ import annotations

from collections.abc import Iterable

from optuna.trial import FrozenTrial

FAILED_TRIAL = "failed_trial"  # the number of the original trial the retry re-runs
RETRY_HISTORY = "retry_history"  # the numbers of every failed trial the retry replaces


def superseded(trials: Iterable[FrozenTrial]) -> set[int]:
    """The numbers of the failed trials among ``trials`` that a retry replaces."""
    return {n for t in trials for n in t.system_attrs.get(RETRY_HISTORY, ())}
