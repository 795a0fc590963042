"""The study's sampler and pruner.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from lrsearch.search.pruners import CurvePruner, HoldKeys, TopKRungPruner
from lrsearch.search.space import PRUNERS


class _StudyView:
    """A study whose trial lists leave out the ``hidden`` trials; everything else is the
    study's own."""

    def __init__(self, study: optuna.Study, hidden: Callable[[FrozenTrial], bool]):
        self._view_of, self._hidden = study, hidden

    def get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return [t for t in self._view_of.get_trials(*args, **kwargs) if not self._hidden(t)]

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return [t for t in self._view_of._get_trials(*args, **kwargs) if not self._hidden(t)]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view_of, name)


class BlindSampler(optuna.samplers.BaseSampler):
    """Hands its inner sampler a view of the study without the ``hidden`` trials.

    Why: a finalist's repeat is the same parameters trained on another seed. Seen by TPE it
    would count that point several times (pulling the model toward schedules already chosen),
    and as a running trial its constant liar would fake a bad value there. Optuna has no way
    to leave single trials out of a sampler's model (trial states are all it filters on), so
    the sampler is given a study whose trial lists do not contain them. The hidden trials
    themselves still ask the inner sampler; their enqueued parameters win.
    """

    def __init__(self, inner: optuna.samplers.BaseSampler,
                 hidden: Callable[[FrozenTrial], bool]):
        self.inner, self.hidden = inner, hidden

    def _view(self, study: optuna.Study) -> Any:
        return _StudyView(study, self.hidden)

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(self._view(study), trial, param_name,
                                             param_distribution)

    def before_trial(self, study, trial) -> None:
        self.inner.before_trial(self._view(study), trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.inner.after_trial(self._view(study), trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def make_sampler(seed: int | None, hidden: Callable[[FrozenTrial], bool] | None = None
                 ) -> optuna.samplers.BaseSampler:
    """The study's TPE sampler; ``hidden`` trials (finalist repeats) are kept out of its
    model (:class:`BlindSampler`)."""
    sampler = _tpe(seed)
    return BlindSampler(sampler, hidden) if hidden is not None else sampler


def _tpe(seed: int | None) -> optuna.samplers.BaseSampler:
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
                kind: str = "asha", reduction_factor: int = 3, sigmas: float = 1.0,
                top_k: int | None = None,
                not_before: Callable[[FrozenTrial], int] | None = None,
                hold_until: int = 0, keys: HoldKeys | None = None
                ) -> optuna.pruners.BasePruner:
    """The study's pruner; ``kind`` as in a space's ``[pruner]`` table.

    Every rule leaves every trial alone for its first ``warmup_fraction`` of iterations: warm-up,
    one-cycle and cyclic schedules look bad early and must not be judged there.

    - ``median``: after ``startup_trials`` complete trials, stops a trial whose validation Dice
      is below the median of completed trials at the same iteration (Optuna's MedianPruner).
    - ``asha``: asynchronous successive halving (Optuna's SuccessiveHalvingPruner): rungs at
      ``warmup_fraction`` of the iterations, then ``reduction_factor`` times further; at each,
      a trial goes on only within the best 1/``reduction_factor`` of the trials that reached it.
      Harsher (the first trials compete with few), and several times cheaper.
    - ``hyperband``: Optuna's HyperbandPruner from ``warmup_fraction`` of the iterations to all
      of them: floor(log_reduction_factor(1 / warmup_fraction)) + 1 brackets of successive
      halving, each starting one rung later, so that some trials are judged late or never.
    - ``curve``: learning-curve extrapolation (lrsearch.search.pruners.CurvePruner): after
      ``startup_trials`` complete trials, stops a trial whose validation Dice forecast at the
      last iteration is more than ``sigmas`` standard deviations below the best trial's.
    - ``top_k_rung``: one rung at ``warmup_fraction``; a trial goes on only within the best
      ``top_k`` (or, without it, the best 1/``reduction_factor``) of the trials that reached it
      (lrsearch.search.pruners.TopKRungPruner); with ``not_before`` (SearchSpace.warmed_up),
      a trial still warming up at the rung is judged once it has warmed up; with
      ``hold_until`` n, a trial is stopped and held while fewer than n trials have reached the
      rung, and continued (re-run) if within the top-k once n have (``keys``: the
      attributes that mark them).
    - ``none``: every trial trains to the end.
    """
    warmup = int(max_iter * warmup_fraction)
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, warmup), reduction_factor=reduction_factor)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, warmup), max_resource=max_iter, reduction_factor=reduction_factor)
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup, interval_steps=1)
    if kind == "curve":
        return CurvePruner(max_iter, warmup, startup_trials=startup_trials, sigmas=sigmas)
    if kind == "top_k_rung":
        return TopKRungPruner(warmup, max_iter, top_k=top_k, reduction_factor=reduction_factor,
                              not_before=not_before, hold_until=hold_until, keys=keys)
    raise ValueError(f"unknown pruner kind {kind!r} ({', '.join(PRUNERS)})")


def is_held(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
    """Did the study's pruner stop ``trial`` only to hold it (top_k_rung's ``hold_until``)?"""
    pruner = study.pruner
    return isinstance(pruner, TopKRungPruner) and pruner.holds(pruner.standing(study, trial))


def pruned_because(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """Why the study's pruner stopped ``trial``, in words, for its stop reason."""
    pruner = study.pruner
    if isinstance(pruner, (CurvePruner, TopKRungPruner)):
        return pruner.reason(study, trial)
    if isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner):
        return (f"not within the best 1/{pruner._reduction_factor} of the trials at this rung "
                f"(successive halving)")
    if isinstance(pruner, optuna.pruners.HyperbandPruner):
        return (f"not within the best 1/{pruner._reduction_factor} of the trials of its bracket "
                f"at this rung (Hyperband)")
    return "below the median of completed trials at this iteration"
