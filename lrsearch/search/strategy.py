"""The study's sampler and pruner.
"""

from __future__ import annotations

import warnings

import optuna


def make_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    # TPE with group=True splits the conditional space (one parameter subspace per family)
    # instead of treating absent parameters as independent; multivariate models the joint
    # base_lr × schedule parameters; constant_liar keeps parallel workers from sampling the
    # same point while their trials run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=10
        )


def make_pruner(max_iter: int, startup_trials: int = 5, warmup_fraction: float = 0.25,
                kind: str = "asha", reduction_factor: int = 3) -> optuna.pruners.BasePruner:
    """The study's pruner; ``kind`` as in a space's ``[pruner]`` table.

    Both rules leave every trial alone for its first ``warmup_fraction`` of iterations: warm-up,
    one-cycle and cyclic schedules look bad early and must not be judged there.

    - ``median``: after ``startup_trials`` complete trials, stops a trial whose validation Dice
      is below the median of completed trials at the same iteration (Optuna's MedianPruner).
    - ``asha``: asynchronous successive halving (Optuna's SuccessiveHalvingPruner): rungs at
      ``warmup_fraction`` of the iterations, then ``reduction_factor`` times further; at each,
      a trial goes on only within the best 1/``reduction_factor`` of the trials that reached it.
      Harsher (the first trials compete with few), and several times cheaper.
    - ``none``: every trial trains to the end.
    """
    warmup = int(max_iter * warmup_fraction)
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, warmup), reduction_factor=reduction_factor)
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup, interval_steps=1)
    raise ValueError(f"unknown pruner kind {kind!r} (asha, median or none)")
