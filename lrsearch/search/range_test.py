"""The LR range test's maths (Smith 2015, 2017; fastai's lr_find): loss smoothing, divergence,
suggested rates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    pass


# Adam's useful rates lie well inside [1e-7, 1]; 100 iterations give ~14 per decade.
MIN_LR = 1e-7

MAX_LR = 1.0


ITERATIONS = 100

SMOOTHING = 0.98


DIVERGENCE = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum

GIVE_BACK = 0.5  # ... or rises back by this share of its fall from the peak before it


MIN_FALL = 0.25  # ... a fall of at least this share of that peak (not noise on the plateau)

LOSS_NAMES = ("total_loss", "loss")


class LossTracker:
    """Bias-corrected EMA of the loss, its minimum, and whether it has diverged."""

    def __init__(self, smoothing: float = SMOOTHING, divergence: float = DIVERGENCE):
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), but got {smoothing!r}")
        if divergence <= 1:
            raise ValueError(f"divergence must be greater than 1, but got {divergence!r}")
        self.smoothing, self.divergence = smoothing, divergence
        self._average, self._count = 0.0, 0
        self.best = math.inf
        self.peak = -math.inf  # the highest smoothed loss before the minimum
        self._highest = -math.inf

    def add(self, loss: float) -> float:
        """The smoothed loss after this value (NaN once a NaN or infinite loss arrived)."""
        if not math.isfinite(loss):
            self._average = math.nan
        self._count += 1
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** self._count)
        self._highest = max(self._highest, smoothed)
        if smoothed < self.best:
            self.best, self.peak = smoothed, self._highest
        return smoothed

    @property
    def count(self) -> int:
        """Losses seen so far."""
        return self._count

    @property
    def fallen(self) -> bool:
        """Has the loss fallen from its peak by at least MIN_FALL of it (not just noise)?"""
        return self.peak > 0 and self.peak - self.best >= MIN_FALL * self.peak

    def exploded(self, smoothed: float) -> bool:
        """NaN, or above ``divergence`` times the smoothed minimum (fastai's rule)."""
        return math.isnan(smoothed) or smoothed > self.divergence * self.best

    def diverged(self, smoothed: float) -> bool:
        """:meth:`exploded`, or a bounded loss giving back ``GIVE_BACK`` of its fall: the range
        test's rule, where the learning rate only grows (in training a loss that rises for a
        while is no divergence)."""
        if self.exploded(smoothed):
            return True
        return self.fallen and smoothed > self.best + GIVE_BACK * (self.peak - self.best)


@dataclass(frozen=True)
class RangeTest:
    """What one LR range test measured; ``points`` are ``(iteration, lr, loss, smoothed)``."""

    min_lr: float
    max_lr: float
    iterations: int
    smoothing: float
    points: tuple[tuple[int, float, float, float], ...]
    stopped: str  # why the run ended
    steepest_lr: float
    last_stable_lr: float

    @property
    def bounds(self) -> tuple[float, float]:
        """The base-LR range to search: steepest descent … last stable (a decade if they meet)."""
        low, high = self.steepest_lr, self.last_stable_lr
        return (low, high) if low < high else (high / 10, high)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["points"] = [list(p) for p in self.points]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RangeTest:
        return cls(**{**data, "points": tuple(tuple(p) for p in data["points"])})

    def summary(self) -> str:
        low, high = self.bounds
        return (f"LR range test: {len(self.points)} iterations, {self.stopped}; steepest "
                f"descent at lr {self.steepest_lr:.3g}, last stable lr {self.last_stable_lr:.3g}"
                f"; suggested base_lr range [{low:.3g}, {high:.3g}]")


def suggest(lrs: Sequence[float], smoothed: Sequence[float]) -> tuple[float, float]:
    """``(steepest, last_stable)`` learning rates of a smoothed loss curve (before divergence).

    Slopes are differences of the smoothed loss against log10(lr) across a twentieth of the
    points either side, taken up to the curve's minimum (the descent) and not in the first
    tenth (like fastai's ``skip_start``): the first smoothed values rest on a few noisy losses,
    and adjacent-point slopes there once put the "steepest descent" at 1e-7 on the demo. The
    last stable lr is the minimum's.
    """
    if len(lrs) != len(smoothed) or not lrs:
        raise ValueError(f"need matching, non-empty lr and loss sequences, but got "
                         f"{len(lrs)} and {len(smoothed)} values")
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        raise ValueError("the loss was never finite: lower --min-lr")
    lowest = min(finite, key=lambda i: smoothed[i])
    logs = [math.log10(lr) for lr in lrs]
    skip, reach = max(1, len(lrs) // 10), max(1, len(lrs) // 20)
    slopes = {}
    for i in range(skip, lowest + 1):
        a, b = max(i - reach, skip - 1), min(i + reach, lowest)
        if logs[b] > logs[a]:
            slopes[i] = (smoothed[b] - smoothed[a]) / (logs[b] - logs[a])
    steepest = min(slopes, key=slopes.get) if slopes else lowest
    return lrs[steepest], lrs[lowest]
