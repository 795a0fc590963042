"""Pruners that Optuna lacks: learning-curve extrapolation and one short rung keeping the top-k.

Both read only what every trial reports: ``(iteration, validation Dice)`` pairs. Neither ever
stops a trial that has reached its last iteration (its training is paid for), and neither is
asked about a trial that must not be pruned (a baseline): the caller does not ask.

LC-PFN (Adriaensen et al., NeurIPS 2023; ``lcpfn`` on PyPI) is the published learning-curve
extrapolator. It is not used: its only release (0.1.3) requires ``torch<=1.11.0`` (no wheel for
Python 3.11, which lrsearch needs) and ``numpy<2``, and downloads its pretrained transformer
from a university server at first use. The parametric ensemble below (Domhan et al., IJCAI
2015, the curves LC-PFN's prior is built from) needs only numpy and scipy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.search import retries

__all__ = ["CURVES", "CurvePruner", "Forecast", "HoldKeys", "TopKRungPruner", "forecast"]

# Saturating learning-curve models in t = iteration / max_iter (so t = 1 is the trial's end):
# name → (function, initial guess, (lower bounds, upper bounds)). A model's value at t = 1 is
# the forecast. Bounds keep the fits tame on a handful of noisy points.
_Model = Callable[..., np.ndarray]
CURVES: dict[str, tuple[_Model, tuple[float, ...], tuple[tuple[float, ...], tuple[float, ...]]]] = {
    # pow3: c - a * t^-alpha (converges like a power law; a < 0 comes down to c)
    "pow3": (lambda t, c, a, alpha: c - a * t ** -alpha,
             (0.7, 0.1, 0.5), ((-0.5, -2.0, 0.01), (1.5, 2.0, 3.0))),
    # exponential: c - a * exp(-b t)
    "exp3": (lambda t, c, a, b: c - a * np.exp(-b * t),
             (0.7, 0.5, 3.0), ((-0.5, -2.0, 0.1), (1.5, 2.0, 50.0))),
    # log-power: a / (1 + (t / e^b)^c), rising to a for c < 0
    "log_power": (lambda t, a, b, c: a / (1.0 + (t / np.exp(b)) ** c),
                  (0.8, -2.0, -1.0), ((0.0, -10.0, -10.0), (1.5, 5.0, 0.0))),
}


@dataclass(frozen=True)
class Forecast:
    """The validation Dice a curve is heading for at its last iteration, and how unsure that is:
    ``sigma`` adds up the noise of the points around the best fit, the uncertainty of each
    model's forecast from its fitted parameters, and the spread of the models' forecasts."""

    mean: float
    sigma: float
    models: dict[str, float]


def forecast(points: Sequence[tuple[int, float]], max_iter: int,
             min_points: int = 4) -> Forecast | None:
    """Fits every model of :data:`CURVES` to ``(iteration, Dice)`` points by least squares and
    forecasts the Dice at ``max_iter``; None with fewer than ``min_points`` finite points (a
    3-parameter fit needs one spare point to measure its noise) or when no model fits."""
    from scipy.optimize import curve_fit  # only the curve pruner pays for importing scipy

    data = [(i, d) for i, d in points if 0 < i <= max_iter and math.isfinite(d)]
    if len(data) < max(min_points, 4):
        return None
    t = np.array([i for i, _ in data], dtype=float) / max_iter
    y = np.array([d for _, d in data], dtype=float)
    predictions: dict[str, float] = {}
    residuals: list[float] = []  # per model: the variance of the points around its fit
    spreads: list[float] = []  # per model: the variance of its forecast from its parameters
    for name, (model, guess, bounds) in CURVES.items():
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # OptimizeWarning on a flat, noisy curve
                params, cov = curve_fit(model, t, y, p0=guess, bounds=bounds, maxfev=2000)
                fitted = model(t, *params)
                at_end = float(model(np.array([1.0]), *params)[0])
                variance = _forecast_variance(model, params, cov)
        except (RuntimeError, ValueError):  # no convergence
            continue
        if not (np.all(np.isfinite(fitted)) and math.isfinite(at_end)):
            continue
        predictions[name] = min(1.0, max(0.0, at_end))
        residuals.append(float(np.sum((y - fitted) ** 2) / (len(y) - len(guess))))
        spreads.append(variance)
    if not predictions:
        return None
    values = np.array(list(predictions.values()))
    sigma = math.sqrt(min(residuals) + float(np.mean(spreads)) + float(np.var(values)))
    return Forecast(float(np.mean(values)), sigma, predictions)


def _forecast_variance(model: _Model, params: np.ndarray, cov: np.ndarray) -> float:
    """The variance of a fit's value at t = 1 from its parameters' covariance (delta method):
    a curve seen only while it still rises leaves its ceiling uncertain, and this says how
    much. Infinite when the points do not pin the parameters down."""
    if not np.all(np.isfinite(cov)):
        return math.inf
    gradient = np.empty(len(params))
    for k in range(len(params)):
        step = 1e-6 * max(1.0, abs(params[k]))
        up, down = params.copy(), params.copy()
        up[k] += step
        down[k] -= step
        gradient[k] = float(model(np.array([1.0]), *up)[0] - model(np.array([1.0]), *down)[0]) \
            / (2 * step)
    return max(0.0, float(gradient @ cov @ gradient))


def _rounds(trial: FrozenTrial) -> list[tuple[int, float]]:
    return sorted(trial.intermediate_values.items())


class CurvePruner(optuna.pruners.BasePruner):
    """Stops a trial whose forecast final validation Dice is unlikely to beat the best trial's.

    Optuna has no learning-curve pruner; this is ours. At each report after ``warmup_steps``,
    once ``startup_trials`` trials are complete, the trial's validation rounds so far are
    extrapolated to ``max_iter`` (:func:`forecast`) and the trial is stopped when
    ``mean + sigmas * sigma`` is below the bar. The bar is the level at which the study's best
    complete trial (by the objective) ended: the mean of its last ``tail`` validation rounds.
    Comparing validation Dice with validation Dice keeps the rule the same for every objective
    (the whole-volume Dice of ``final_dice`` sits on another level than the window Dice).

    NiftyNet's validation Dice swings by 0.05-0.1 between rounds, so the rule is on the fit of
    all the rounds, never on the last one, and the fit's own noise is part of sigma: a noisy,
    flat curve near the bar is kept.
    """

    def __init__(self, max_iter: int, warmup_steps: int, startup_trials: int = 5,
                 sigmas: float = 1.0, tail: int = 3) -> None:
        self.max_iter = max_iter
        self.warmup_steps = warmup_steps
        self.startup_trials = startup_trials
        self.sigmas = sigmas
        self.tail = tail

    def bar(self, study: optuna.Study) -> float | None:
        """The validation Dice the best complete trial ended at; None before start-up."""
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.value is not None and t.intermediate_values]
        if not done or len(done) < self.startup_trials:
            return None
        best = max(done, key=lambda t: t.value)
        return float(np.mean([d for _, d in _rounds(best)[-self.tail:]]))

    def judge(self, study: optuna.Study, trial: FrozenTrial
              ) -> tuple[float, Forecast] | None:
        """(bar, forecast) when the trial is in the judged stretch and both exist."""
        step = trial.last_step
        if step is None or step < self.warmup_steps or step >= self.max_iter:
            return None
        bar = self.bar(study)
        if bar is None:
            return None
        seen = forecast(_rounds(trial), self.max_iter)
        return None if seen is None else (bar, seen)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        judged = self.judge(study, trial)
        if judged is None:
            return False
        bar, seen = judged
        return seen.mean + self.sigmas * seen.sigma < bar

    def reason(self, study: optuna.Study, trial: FrozenTrial) -> str:
        """Why the trial was stopped, for its stop reason."""
        judged = self.judge(study, trial)
        if judged is None:
            return "by the learning-curve forecast"
        bar, seen = judged
        return (f"forecast {seen.mean:.3f} ± {seen.sigma:.3f} at iteration {self.max_iter}, "
                f"below the best trial's {bar:.3f} by more than {self.sigmas:g} sigma "
                f"(learning-curve extrapolation)")


@dataclass(frozen=True)
class HoldKeys:
    """The trial user attributes through which a study keeps top_k_rung's holds (the study's
    code sets them; lrsearch.monitor.records names them): ``held``, on a held trial, its
    iteration at the rung; ``continues``, on a continuation, the held trial's number."""

    held: str
    continues: str


class TopKRungPruner(optuna.pruners.BasePruner):
    """One short rung, then keep the top-k (Egele et al. 2023, "Is one epoch all you need for
    multi-fidelity hyperparameter optimization?").

    Every trial trains to ``rung_step``; at its first report there, it goes on only when its
    validation Dice ranks within the best ``top_k`` of all trials that reached the rung (itself,
    baselines and pruned trials included) or, with ``top_k`` None, within the best
    1/``reduction_factor`` of them (at least the best one). A trial past the rung is never judged
    again. Optuna's SuccessiveHalvingPruner cannot be configured to this: its rungs go on every
    ``reduction_factor`` times further, and one that falls on the last iteration would stop a
    trial that has already paid for all of it.

    With ``not_before`` (trial → iterations, e.g. :meth:`SearchSpace.warmed_up`), a trial whose
    schedule is still warming up at the rung is judged instead at its first report once warmed
    up, against the other trials' Dice at that same report or, for those stopped before it,
    their last.

    With ``hold_until`` n, the top-k are taken among n trials at least: while fewer have reached
    the rung, a trial within the top-k there is stopped too, *held* (so that the first trials
    of a search do not all go on for want of rivals). Once n have reached it, every held trial
    then within the top-k is continued (:meth:`continuations`): queued again with its
    parameters and seed, it repeats its run to the rung exactly and trains on to the end. A
    continuation is not judged again. ``keys`` names the attributes that mark both.
    """

    def __init__(self, rung_step: int, max_iter: int, top_k: int | None = None,
                 reduction_factor: int = 3,
                 not_before: Callable[[FrozenTrial], int] | None = None,
                 hold_until: int = 0, keys: HoldKeys | None = None) -> None:
        if hold_until and keys is None:
            raise ValueError("hold_until needs the keys that mark held trials and continuations")
        self.rung_step = max(1, rung_step)
        self.max_iter = max_iter
        self.top_k = top_k
        self.reduction_factor = reduction_factor
        self.not_before = not_before
        self.hold_until = hold_until
        self.keys = keys
        self._not_before: dict[int, int] = {}  # by trial number

    def judged_at(self, trial: FrozenTrial) -> int:
        """The iteration from which the trial is judged (at its first report there)."""
        if self.not_before is None:
            return self.rung_step
        if trial.number not in self._not_before:
            self._not_before[trial.number] = self.not_before(trial)
        return max(self.rung_step, self._not_before[trial.number])

    @staticmethod
    def _first_at(trial: FrozenTrial, step: int) -> tuple[int, float] | None:
        """The trial's first report at or past ``step``."""
        return next(((i, d) for i, d in _rounds(trial) if i >= step), None)

    def _continues(self, trial: FrozenTrial) -> int | None:
        """The held trial ``trial`` continues, if it is a continuation."""
        return None if self.keys is None else trial.user_attrs.get(self.keys.continues)

    def _keep(self, reached: int) -> int:
        return self.top_k if self.top_k is not None else max(1, reached // self.reduction_factor)

    def _rivals(self, study: optuna.Study, trial: FrozenTrial, step: int) -> list[float]:
        """The Dice of every other trial that reached the rung, at ``step`` (or, stopped before
        it, at its last report). A continuation is its held trial's run again, and a failed
        trial that a retry replaces is that retry's run (whose reports it inherits): neither
        is a rival."""
        trials = study.get_trials(deepcopy=False)
        replaced = retries.superseded(trials)
        values = []
        for other in trials:
            if other.number == trial.number or other.number in replaced \
                    or self._continues(other) is not None \
                    or self._first_at(other, self.rung_step) is None:
                continue
            there = self._first_at(other, step) or _rounds(other)[-1]
            if math.isfinite(there[1]):
                values.append(there[1])
        return values

    def standing(self, study: optuna.Study, trial: FrozenTrial) -> tuple[int, int, int] | None:
        """(rank of the trial where it is judged from 1, trials that reached the rung, how many
        go on); None unless the trial's last report is the one it is judged at, or for a
        continuation."""
        if self._continues(trial) is not None:
            return None
        own = self._first_at(trial, self.judged_at(trial))
        if own is None or own[0] != trial.last_step or own[0] >= self.max_iter:
            return None
        values = self._rivals(study, trial, own[0])
        reached = len(values) + 1
        return 1 + sum(v > own[1] for v in values), reached, self._keep(reached)

    def holds(self, standing: tuple[int, int, int] | None) -> bool:
        """Is a trial of this standing held (within the top-k, but too few trials to tell)?"""
        return standing is not None and standing[0] <= standing[2] \
            and standing[1] < self.hold_until

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        standing = self.standing(study, trial)
        return standing is not None and (standing[0] > standing[2] or self.holds(standing))

    def reason(self, study: optuna.Study, trial: FrozenTrial) -> str:
        standing = self.standing(study, trial)
        if standing is None:
            return "at the rung"
        rank, reached, keep = standing
        where = f"iteration {self.rung_step}"
        if self.judged_at(trial) > self.rung_step:
            where = f"iteration {trial.last_step}, once its schedule had warmed up"
        if self.holds(standing):
            return (f"ranked {rank} of the {reached} trials at the rung ({where}), too few to "
                    f"judge: it goes on, re-run with its seed, if among the best {keep} once "
                    f"{self.hold_until} have reached the rung")
        return (f"ranked {rank} of the {reached} trials at the rung ({where}); "
                f"only the best {keep} go on (one rung, top-k)")

    def continuations(self, study: optuna.Study, final: bool = False) -> list[FrozenTrial]:
        """The held trials to continue now: once ``hold_until`` trials have reached the rung
        (or, ``final``, however many did: no more will come), each held trial that is within
        the top-k there and has no continuation yet. Baselines and finalist repeats are never
        held (the pruner is not asked about them)."""
        if not self.hold_until:
            return []
        trials = study.get_trials(deepcopy=False)
        continued = {self._continues(t) for t in trials}
        chosen = []
        for trial in trials:
            if trial.state != TrialState.PRUNED or trial.number in continued \
                    or self.keys is None or self.keys.held not in trial.user_attrs:
                continue
            standing = self.standing(study, trial)  # where it stopped: its last report
            if standing is not None and (final or standing[1] >= self.hold_until) \
                    and standing[0] <= standing[2]:
                chosen.append(trial)
        return chosen
