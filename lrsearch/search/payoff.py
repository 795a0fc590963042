"""What the study's best schedule buys over the user's own config, from stored Dice.

Two figures, both on whole volumes of the validation subjects:

- **Δ Dice at equal budget**: the best trial's final Dice minus the ``config`` baseline's
  (the trial that trains the user's config with its constant lr), both after ``max_iter``.
- **iterations to the baseline's Dice**: the first saved checkpoint at which the best trial's
  Dice reaches the baseline's final Dice, as iterations and as a fraction of ``max_iter``.

Checkpoints are only every ``save_every_n`` iterations, so the second figure is only as fine
as they are. It is withheld (status ``too_sparse``, no guess) when fewer than
:data:`MIN_CHECKPOINTS` checkpoints lie within ``max_iter``, or when the Dice is reached already
at the first checkpoint (the true point could be anywhere before it). "Not reached" is an
answer. No I/O here: :mod:`lrsearch.run.payoff` segments the checkpoints.

Once the finalists have repeats (:mod:`lrsearch.search.repeats`), both figures are on **means**
(:func:`compare_means`): Δ is the best schedule's mean final Dice minus the config's, and the
iterations are where the mean of the best schedule's checkpoint curves (one per run) first
reaches the config's mean final Dice. Beside it, round by round: where each run reaches the
config's run of the same seed, so the spread of the speed-up shows too.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

MIN_CHECKPOINTS = 4  # checkpoints within max_iter needed to resolve the speed-up

MEASURED, NOT_REACHED, TOO_SPARSE, BEST_IS_BASELINE, NOT_COMPUTED = (
    "measured", "not_reached", "too_sparse", "best_is_baseline", "not_computed")


def curve_from_json(value: Any) -> dict[int, float] | None:
    """A stored ``{"iteration": dice}`` mapping (JSON keys are strings) as ints to floats."""
    if not isinstance(value, Mapping):
        return None
    try:
        return {int(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        return None


def first_reaching(curve: Mapping[int, float], target: float) -> int | None:
    """The first iteration of ``curve`` whose Dice is at least ``target``, if any."""
    return next((i for i, d in sorted(curve.items()) if d >= target), None)


def curve_to_json(curve: Mapping[int, float]) -> dict[str, float]:
    return {str(k): round(float(v), 5) for k, v in sorted(curve.items())}


@dataclass(frozen=True)
class Payoff:
    """The best trial against the ``config`` baseline."""

    baseline_trial: int
    best_trial: int
    max_iter: int
    baseline_dice: float  # final whole-volume Dice of the baseline
    best_dice: float  # ... of the best trial
    status: str  # MEASURED, NOT_REACHED, TOO_SPARSE, BEST_IS_BASELINE or NOT_COMPUTED
    reason: str  # the status in words
    iterations: int | None = None  # first checkpoint reaching baseline_dice (MEASURED only)
    seconds: float | None = None  # what segmenting the checkpoints cost
    # On means (compare_means): the runs behind best_dice and baseline_dice, and round by
    # round the first checkpoint at which the best schedule's run reached the config's run of
    # the same seed (None: not reached). One run each and () on single runs.
    best_runs: int = 1
    baseline_runs: int = 1
    by_round: tuple[tuple[int, int | None], ...] = ()
    first_checkpoint: int | None = None  # a run reaching it there reached it anywhere up to it

    @property
    def on_means(self) -> bool:
        return self.best_runs > 1 or self.baseline_runs > 1

    @property
    def delta_dice(self) -> float:
        return self.best_dice - self.baseline_dice

    @property
    def fraction(self) -> float | None:
        return self.iterations / self.max_iter if self.iterations is not None else None

    def to_json(self) -> dict[str, Any]:
        """``lrsearch best --json``'s ``baseline`` and ``vs_baseline``."""
        return {
            "baseline": {"trial": self.baseline_trial, "final_dice": self.baseline_dice,
                         "max_iter": self.max_iter},
            "vs_baseline": {
                "delta_dice": self.delta_dice,
                "iterations_to_baseline_dice": self.iterations,
                "fraction_of_budget": self.fraction,
                "status": self.status,
                "reason": self.reason,
                "checkpoint_seconds": self.seconds,
                "basis": "means" if self.on_means else "single runs",
                "runs": self.best_runs,
                "baseline_runs": self.baseline_runs,
                "iterations_to_baseline_dice_by_round": {str(r): k for r, k in self.by_round},
            },
        }

    def _rounds_text(self) -> str:
        if not self.by_round:
            return ""
        shown = ", ".join("not reached" if k is None else
                          f"≤{k}" if k == self.first_checkpoint else f"{k}"
                          for _, k in self.by_round)
        return f"; seed by seed, each run reaches your config's run: {shown}"

    def line(self) -> str:
        """One line for people: "vs your config (trial 0, Dice 0.781): +0.046 Dice at 200
        iterations; reaches 0.781 at iteration 100 (50 % of the budget)"."""
        mean = "mean " if self.on_means else ""
        runs = f" over {self.baseline_runs} runs" if self.on_means else ""
        head = (f"vs your config (trial {self.baseline_trial}, {mean}Dice "
                f"{self.baseline_dice:.3f}{runs}): ")
        if self.status == BEST_IS_BASELINE:
            return head + self.reason
        text = f"{self.delta_dice:+.3f} {mean}Dice at {self.max_iter} iterations; "
        if self.on_means and self.status in (MEASURED, NOT_REACHED):
            text += f"the mean of trial {self.best_trial}'s {self.best_runs} runs "
        if self.status == MEASURED:
            text += (f"reaches {self.baseline_dice:.3f} at iteration {self.iterations} "
                     f"({self.fraction:.0%} of the budget)")
        else:
            text += self.reason
        text += self._rounds_text()
        if self.seconds is not None:
            text += f" [checkpoints segmented in {self.seconds:,.0f} s]"
        return head + text


def compare(baseline_trial: int, baseline_dice: float, best_trial: int, best_dice: float,
            max_iter: int, best_curve: Mapping[int, float] | None,
            seconds: float | None = None) -> Payoff:
    """The payoff from final Dice and the best trial's whole-volume Dice per checkpoint
    (``None``: not segmented yet)."""
    common = dict(baseline_trial=baseline_trial, best_trial=best_trial, max_iter=max_iter,
                  baseline_dice=baseline_dice, best_dice=best_dice, seconds=seconds)
    if best_trial == baseline_trial:
        return Payoff(**common, status=BEST_IS_BASELINE,
                      reason="the best trial is your config itself: no speed-up to measure")
    if best_curve is None:
        return Payoff(**common, status=NOT_COMPUTED,
                      reason="checkpoints not segmented yet (lrsearch best --payoff)")
    return _timed(common, best_curve, baseline_dice, max_iter)


def _timed(common: dict[str, Any], curve: Mapping[int, float], baseline_dice: float,
           max_iter: int) -> Payoff:
    """The first checkpoint of ``curve`` at or above ``baseline_dice``, or why it cannot be
    told."""
    points = sorted((i, d) for i, d in curve.items() if 0 < i <= max_iter)
    fix = f"save more often ([TRAINING] save_every_n <= {max(1, max_iter // MIN_CHECKPOINTS)})"
    if len(points) < MIN_CHECKPOINTS:
        return Payoff(**common, status=TOO_SPARSE, reason=(
            f"too few checkpoints to time it: {len(points)} within {max_iter} iterations, "
            f"{MIN_CHECKPOINTS} needed; {fix}"))
    reached = first_reaching(dict(points), baseline_dice)
    if reached is None:
        return Payoff(**common, status=NOT_REACHED, reason=(
            f"does not reach {baseline_dice:.3f} at any of its {len(points)} checkpoints"))
    if reached == points[0][0]:
        return Payoff(**common, status=TOO_SPARSE, reason=(
            f"reaches {baseline_dice:.3f} already at its first checkpoint (iteration {reached})"
            f", so anywhere up to there; save more often ([TRAINING] save_every_n < {reached}) "
            f"to time it"))
    return Payoff(**common, status=MEASURED, iterations=reached,
                  reason=f"reaches {baseline_dice:.3f} at iteration {reached}")


def mean_curve(curves: Sequence[Mapping[int, float]]) -> dict[int, float]:
    """The mean Dice of several runs' curves at the checkpoints all of them saved."""
    common = set.intersection(*(set(c) for c in curves)) if curves else set()
    return {i: statistics.fmean(c[i] for c in curves) for i in sorted(common)}


def compare_means(baseline_trial: int, baseline_runs: Mapping[int, float], best_trial: int,
                  best_runs: Mapping[int, float], max_iter: int,
                  best_curves: Mapping[int, Mapping[int, float] | None],
                  seconds: float | None = None) -> Payoff:
    """The payoff on means: final Dice by round of the config and of the best schedule, and
    the best schedule's whole-volume Dice per checkpoint by round (``None``: that run is not
    segmented yet). Round by round, where each run reaches the config's run of its round."""
    common = dict(baseline_trial=baseline_trial, best_trial=best_trial, max_iter=max_iter,
                  baseline_dice=statistics.fmean(baseline_runs.values()),
                  best_dice=statistics.fmean(best_runs.values()), seconds=seconds,
                  best_runs=len(best_runs), baseline_runs=len(baseline_runs))
    if best_trial == baseline_trial:
        return Payoff(**common, status=BEST_IS_BASELINE,
                      reason="the best mean is your config itself: no speed-up to measure")
    missing = sorted(r for r in best_runs if best_curves.get(r) is None)
    if missing:
        return Payoff(**common, status=NOT_COMPUTED, reason=(
            f"checkpoints of {len(missing)} of its {len(best_runs)} runs not segmented yet "
            f"(lrsearch best --payoff)"))
    curves = {r: {i: d for i, d in best_curves[r].items() if 0 < i <= max_iter}
              for r in best_runs}
    by_round = tuple((r, first_reaching(curves[r], baseline_runs[r]))
                     for r in sorted(set(best_runs) & set(baseline_runs)))
    timed = _timed(common, mean_curve(list(curves.values())), common["baseline_dice"],
                   max_iter)
    first = min((min(c) for c in curves.values() if c), default=None)
    return replace(timed, by_round=by_round, first_checkpoint=first)
