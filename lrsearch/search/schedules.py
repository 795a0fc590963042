"""Learning-rate schedule families: pure functions of the iteration.

One job, one module: every family lrsearch searches, with its validation and serialisation
(over 600 lines because there are fourteen families, each small).

Each family is one small frozen dataclass whose fields are its hyperparameters, in absolute
iterations and absolute learning rates. ``lr(iteration, history)`` gives the learning rate of the
update that follows ``iteration`` updates (0-based, like PyTorch's scheduler step count), and
``to_dict()`` / :func:`from_dict` round-trip through JSON, so a schedule chosen in the study
process can be replayed exactly inside the training process.

Each family's docstring gives ``lr(i)`` at iteration ``i`` and a doctest example.

``history`` is the validation metric (higher is better, e.g. Dice) observed so far, in order.
Only :class:`Plateau` reads it, and it replays the whole history on every call, so a resumed run
gets the same learning rate as an uninterrupted one.

Standard library only, and Python 3.7-compatible: the TF 1.15 runtime imports this module.
"""

from __future__ import annotations

import bisect
import difflib
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

__all__ = [
    "FAMILIES",
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "Exponential",
    "InverseSqrt",
    "LRRange",
    "MultiStep",
    "OneCycle",
    "Plateau",
    "Polynomial",
    "Schedule",
    "Step",
    "Warmup",
    "WarmupStableDecay",
    "curve",
    "from_dict",
]

# ReduceLROnPlateau ignores a reduction smaller than this (PyTorch's ``eps``).
_PLATEAU_EPS = 1e-8


class Schedule:
    """Base of every family: validation of ``iteration``, serialisation, nothing else.

    Every schedule also has ``base_lr``: the learning rate the family is scaled by (its peak for
    every family except :class:`Cyclic`, where PyTorch's naming makes it the lower bound).
    """

    family: ClassVar[str] = ""

    def lr(self, iteration: int, history: Sequence[float] = ()) -> float:
        """Learning rate of the update that follows ``iteration`` updates."""
        try:
            index = -1 if isinstance(iteration, bool) else operator.index(iteration)
        except TypeError:
            index = -1
        if index < 0:
            raise ValueError(f"iteration must be a non-negative integer, but got {iteration!r}")
        return float(self._lr(index, history))

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """``{"family": ..., **fields}``, JSON-able; :func:`from_dict` inverts it."""
        out: dict[str, Any] = {"family": self.family}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Schedule):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out


# --- validation (messages state the rule and the value received) ---------------------------

def _check_number(name: str, value: Any, rule: str, ok: Any) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not ok(value)):
        raise ValueError(f"{name} must be {rule}, but got {value!r}")


def _check_lr(name: str, value: Any) -> None:
    _check_number(name, value, "a positive finite number", lambda v: v > 0)


def _check_int(name: str, value: Any, minimum: int) -> None:
    rule = {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be {rule}, but got {value!r}")


def _check_gamma(value: Any) -> None:
    _check_number("gamma", value, "in (0, 1]", lambda v: 0 < v <= 1)


def _check_floor(name: str, value: Any, base_lr: float) -> None:
    _check_number(name, value, f"in [0, base_lr={base_lr!r}]", lambda v: 0 <= v <= base_lr)


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, but got {value!r}")


def _did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- shared shapes ----------------------------------------------------------------------

def _cosine(start: float, end: float, progress: float) -> float:
    """Half a cosine from ``start`` (progress 0) to ``end`` (progress 1)."""
    return end + (start - end) * (1.0 + math.cos(math.pi * progress)) / 2.0


def _linear(start: float, end: float, progress: float) -> float:
    return start + (end - start) * progress


def _ramp(iteration: int, warmup_iters: int) -> float:
    """Linear warm-up factor by update number (iteration + 1), as in Vaswani et al. (2017):
    the first update gets ``1 / warmup_iters`` of the peak, never zero."""
    return min(1.0, (iteration + 1) / warmup_iters)


def _fmt(value: float) -> str:
    """Compact number for descriptions: 3e-4, 0.05, 1.2e+5 style without padding."""
    if value == 0:
        return "0"
    if 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


# --- families -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Constant(Schedule):
    """``lr(i) = base_lr``: the same learning rate for every update, the baseline every other
    family must beat.

    >>> Constant(base_lr=3e-4).lr(1000)
    0.0003
    """

    family: ClassVar[str] = "constant"
    base_lr: float

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        return self.base_lr

    def describe(self) -> str:
        return f"constant, base lr {_fmt(self.base_lr)}"


@dataclass(frozen=True)
class Step(Schedule):
    """``lr(i) = base_lr * gamma ** (i // step_size)`` (PyTorch StepLR).

    >>> Step(base_lr=0.1, step_size=100, gamma=0.5).lr(250)
    0.025
    """

    family: ClassVar[str] = "step"
    base_lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        _check_int("step_size", self.step_size, 1)
        _check_gamma(self.gamma)

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        return self.base_lr * self.gamma ** (iteration // self.step_size)

    def describe(self) -> str:
        return (f"step, base lr {_fmt(self.base_lr)} ×{_fmt(self.gamma)} "
                f"every {self.step_size} iterations")


@dataclass(frozen=True)
class MultiStep(Schedule):
    """Multiply by ``gamma`` at each milestone iteration (PyTorch MultiStepLR):
    ``lr(i) = base_lr * gamma ** sum(m <= i for m in milestones)``.

    >>> MultiStep(base_lr=0.1, milestones=(100, 200), gamma=0.5).lr(200)
    0.025
    """

    family: ClassVar[str] = "multistep"
    base_lr: float
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        milestones = self.milestones
        rule = "a non-empty, strictly increasing sequence of positive integers"
        if not isinstance(milestones, (list, tuple)) or not milestones:
            raise ValueError(f"milestones must be {rule}, but got {milestones!r}")
        milestones = tuple(milestones)
        if (any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in milestones)
                or list(milestones) != sorted(set(milestones))):
            raise ValueError(f"milestones must be {rule}, but got {milestones!r}")
        object.__setattr__(self, "milestones", milestones)  # a list from JSON becomes a tuple
        _check_gamma(self.gamma)

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        return self.base_lr * self.gamma ** bisect.bisect_right(self.milestones, iteration)

    def describe(self) -> str:
        at = ", ".join(str(m) for m in self.milestones)
        return f"multistep, base lr {_fmt(self.base_lr)} ×{_fmt(self.gamma)} at iterations {at}"


@dataclass(frozen=True)
class Exponential(Schedule):
    """``lr(i) = base_lr * gamma ** i`` (PyTorch ExponentialLR, stepped every update).

    >>> Exponential(base_lr=0.8, gamma=0.5).lr(3)
    0.1
    """

    family: ClassVar[str] = "exponential"
    base_lr: float
    gamma: float

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        _check_gamma(self.gamma)

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        return self.base_lr * self.gamma ** iteration

    def describe(self) -> str:
        return f"exponential, base lr {_fmt(self.base_lr)} ×{self.gamma:.6g} per iteration"


@dataclass(frozen=True)
class Polynomial(Schedule):
    """``lr(i) = (base_lr - end_lr) * (1 - min(i, total_iters) / total_iters) ** power + end_lr``.

    PyTorch PolynomialLR is ``end_lr = 0``; nnU-Net's "poly" is ``power = 0.9, end_lr = 0``.

    >>> Polynomial(base_lr=0.1, total_iters=100, power=2.0).lr(50)
    0.025
    """

    family: ClassVar[str] = "polynomial"
    base_lr: float
    total_iters: int
    power: float = 1.0
    end_lr: float = 0.0

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        _check_int("total_iters", self.total_iters, 1)
        _check_number("power", self.power, "positive", lambda v: v > 0)
        _check_floor("end_lr", self.end_lr, self.base_lr)

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        remaining = 1.0 - min(iteration, self.total_iters) / self.total_iters
        return (self.base_lr - self.end_lr) * remaining ** self.power + self.end_lr

    def describe(self) -> str:
        return (f"polynomial (power {_fmt(self.power)}), base lr {_fmt(self.base_lr)} → "
                f"{_fmt(self.end_lr)} over {self.total_iters} iterations")


@dataclass(frozen=True)
class Cosine(Schedule):
    """PyTorch CosineAnnealingLR's closed form, held at ``eta_min`` after ``total_iters``
    (PyTorch's closed form would climb back up; a trial that runs longer should not):
    ``lr(i) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / total_iters)) / 2`` with
    ``t = min(i, total_iters)``.

    >>> round(Cosine(base_lr=0.1, total_iters=100, eta_min=0.01).lr(50), 6)
    0.055
    """

    family: ClassVar[str] = "cosine"
    base_lr: float
    total_iters: int
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        _check_int("total_iters", self.total_iters, 1)
        _check_floor("eta_min", self.eta_min, self.base_lr)

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        progress = min(iteration, self.total_iters) / self.total_iters
        return _cosine(self.base_lr, self.eta_min, progress)

    def describe(self) -> str:
        return (f"cosine, base lr {_fmt(self.base_lr)} → {_fmt(self.eta_min)} "
                f"over {self.total_iters} iterations")


@dataclass(frozen=True)
class CosineRestarts(Schedule):
    """SGDR (Loshchilov & Hutter 2017; PyTorch CosineAnnealingWarmRestarts): cosine from
    ``base_lr`` to ``eta_min`` over ``t_0`` iterations, restart, each period ``t_mult`` times
    the previous one.

    ``lr(i) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t_cur / t_i)) / 2``, where ``t_i`` is
    the current period (``t_0 * t_mult ** k``) and ``t_cur`` the iterations since its restart.

    >>> CosineRestarts(base_lr=0.1, t_0=10, t_mult=2).lr(20)
    0.05
    """

    family: ClassVar[str] = "cosine_restarts"
    base_lr: float
    t_0: int
    t_mult: int = 1
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        _check_int("t_0", self.t_0, 1)
        _check_int("t_mult", self.t_mult, 1)
        _check_floor("eta_min", self.eta_min, self.base_lr)

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        period, t_cur = self.t_0, iteration
        if self.t_mult == 1:
            t_cur = iteration % period
        else:  # integer walk: exact at restart boundaries, O(log iteration)
            while t_cur >= period:
                t_cur -= period
                period *= self.t_mult
        return _cosine(self.base_lr, self.eta_min, t_cur / period)

    def describe(self) -> str:
        return (f"cosine_restarts, base lr {_fmt(self.base_lr)} → {_fmt(self.eta_min)}, "
                f"first period {self.t_0} iterations, each next ×{self.t_mult}")


_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@dataclass(frozen=True)
class Cyclic(Schedule):
    """Cyclical learning rates (Smith 2017), PyTorch CyclicLR values.

    ``base_lr`` is the lower bound and ``max_lr`` the upper one (PyTorch's naming). The amplitude
    is scaled by 1 (triangular), halved every cycle (triangular2) or multiplied by
    ``gamma ** iteration`` (exp_range). ``step_size_down`` defaults to ``step_size_up``. With
    ``up, down = step_size_up, step_size_down`` and ``cycle, p = divmod(i, up + down)``::

        rise = p / up if p <= up else (up + down - p) / down
        lr(i) = base_lr + (max_lr - base_lr) * rise * amplitude  # 1 | 0.5 ** cycle | gamma ** i

    >>> Cyclic(base_lr=0.01, max_lr=0.05, step_size_up=10, mode="triangular2").lr(25)
    0.02
    """

    family: ClassVar[str] = "cyclic"
    base_lr: float
    max_lr: float
    step_size_up: int = 2000
    step_size_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        _check_number("max_lr", self.max_lr, f"at least base_lr={self.base_lr!r}",
                      lambda v: v >= self.base_lr)
        _check_int("step_size_up", self.step_size_up, 1)
        if self.step_size_down is None:
            object.__setattr__(self, "step_size_down", self.step_size_up)
        _check_int("step_size_down", self.step_size_down, 1)
        _check_choice("mode", self.mode, _CYCLIC_MODES)
        _check_gamma(self.gamma)

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        up, down = self.step_size_up, self.step_size_down
        cycle, position = divmod(iteration, up + down)  # cycle is 0-based here
        rise = position / up if position <= up else (up + down - position) / down
        if self.mode == "triangular":
            amplitude = 1.0
        elif self.mode == "triangular2":
            amplitude = 0.5 ** cycle
        else:
            amplitude = self.gamma ** iteration
        return self.base_lr + (self.max_lr - self.base_lr) * rise * amplitude

    def describe(self) -> str:
        text = (f"cyclic {self.mode}, lr {_fmt(self.base_lr)} ↔ {_fmt(self.max_lr)}, "
                f"{self.step_size_up} up + {self.step_size_down} down iterations")
        if self.mode == "exp_range":
            text += f", amplitude ×{self.gamma:.6g} per iteration"
        return text


@dataclass(frozen=True)
class OneCycle(Schedule):
    """1cycle (Smith & Topin 2019), PyTorch OneCycleLR values.

    Starts at ``max_lr / div_factor``, rises to ``max_lr`` at ``pct_start`` of ``total_steps``,
    then anneals to ``max_lr / div_factor / final_div_factor`` (three_phase: back down to the
    start value first, then to the minimum). ``base_lr`` is ``max_lr``, the peak, so the shared
    base learning rate means the same thing as in the other families. Past ``total_steps`` the
    minimum is held (PyTorch raises instead). With ``s = min(i, total_steps - 1)``, the peak
    step ``r = pct_start * total_steps - 1`` and ``anneal(a, b, x)`` either
    ``b + (a - b) * (1 + cos(pi * x)) / 2`` (cos) or ``a + (b - a) * x`` (linear), two phases::

        lr(i) = anneal(max_lr / div_factor, max_lr, s / r)                  # s <= r
        lr(i) = anneal(max_lr, max_lr / div_factor / final_div_factor,
                       (s - r) / (total_steps - 1 - r))                     # s > r

    (three_phase: ``anneal(max_lr, max_lr / div_factor, (s - r) / r)`` up to ``s = 2 * r``, then
    from there to the minimum).

    >>> OneCycle(max_lr=0.1, total_steps=100).lr(29)
    0.1
    """

    family: ClassVar[str] = "one_cycle"
    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def __post_init__(self) -> None:
        _check_lr("max_lr", self.max_lr)
        _check_int("total_steps", self.total_steps, 1)
        _check_number("pct_start", self.pct_start, "in [0, 1]", lambda v: 0 <= v <= 1)
        _check_choice("anneal_strategy", self.anneal_strategy, ("cos", "linear"))
        _check_number("div_factor", self.div_factor, "positive", lambda v: v > 0)
        _check_number("final_div_factor", self.final_div_factor, "positive", lambda v: v > 0)
        if not isinstance(self.three_phase, bool):
            raise ValueError(f"three_phase must be a bool, but got {self.three_phase!r}")
        if self.three_phase and self.pct_start > 0.5:
            # the second phase would end after the last step and the third would never start
            raise ValueError(f"pct_start must be at most 0.5 with three_phase, "
                             f"but got {self.pct_start!r}")

    @property
    def base_lr(self) -> float:
        return self.max_lr

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        initial = self.max_lr / self.div_factor
        minimum = initial / self.final_div_factor
        steps, rise = self.total_steps, self.pct_start * self.total_steps
        if self.three_phase:
            phases = [(rise - 1, initial, self.max_lr), (2 * rise - 2, self.max_lr, initial),
                      (steps - 1, initial, minimum)]
        else:
            phases = [(rise - 1, initial, self.max_lr), (steps - 1, self.max_lr, minimum)]
        anneal = _cosine if self.anneal_strategy == "cos" else _linear
        step = min(iteration, steps - 1)
        # the first phase whose end is not yet passed, in order (PyTorch's rule)
        index = next((i for i, phase in enumerate(phases[:-1]) if step <= phase[0]),
                     len(phases) - 1)
        phase_end, start_lr, end_lr = phases[index]
        phase_start = phases[index - 1][0] if index else 0.0
        span = phase_end - phase_start
        # PyTorch divides by zero on an empty phase; treat it as already finished
        return anneal(start_lr, end_lr, (step - phase_start) / span if span > 0 else 1.0)

    def describe(self) -> str:
        initial = self.max_lr / self.div_factor
        phases = "three phases" if self.three_phase else "two phases"
        return (f"one_cycle ({self.anneal_strategy}, {phases}), lr {_fmt(initial)} → "
                f"{_fmt(self.max_lr)} → {_fmt(initial / self.final_div_factor)} over "
                f"{self.total_steps} iterations, peak at {self.pct_start:.0%}")


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warm-up in front of any schedule.

    For ``iteration < warmup_iters`` the factor goes linearly from ``start_factor`` to 1 (PyTorch
    LinearLR) and multiplies the inner schedule's first value, ``schedule.lr(0, history)``.
    After it, the inner schedule runs *shifted*: ``schedule.lr(iteration - warmup_iters)``, so
    its whole shape (a cosine's full decay, a step's first interval) follows the warm-up instead
    of being cut short by it. A trial of T iterations therefore gives the inner schedule
    ``T - warmup_iters`` of them. ``history`` is passed through unchanged::

        factor = start_factor + (1 - start_factor) * i / warmup_iters
        lr(i) = factor * schedule.lr(0) if i < warmup_iters else schedule.lr(i - warmup_iters)

    >>> Warmup(Step(base_lr=0.1, step_size=100, gamma=0.5), warmup_iters=50,
    ...        start_factor=0.5).lr(150)
    0.05
    """

    family: ClassVar[str] = "warmup"
    schedule: Schedule
    warmup_iters: int
    start_factor: float

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise ValueError(f"schedule must be a Schedule, but got {self.schedule!r}")
        _check_int("warmup_iters", self.warmup_iters, 1)
        _check_number("start_factor", self.start_factor, "in (0, 1]", lambda v: 0 < v <= 1)

    @property
    def base_lr(self) -> float:
        return self.schedule.base_lr

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        if iteration < self.warmup_iters:
            factor = _linear(self.start_factor, 1.0, iteration / self.warmup_iters)
            return factor * self.schedule.lr(0, history)
        return self.schedule.lr(iteration - self.warmup_iters, history)

    def describe(self) -> str:
        return (f"{self.schedule.describe()}, {self.warmup_iters} warmup iterations "
                f"from {_fmt(self.start_factor)}×")


@dataclass(frozen=True)
class WarmupStableDecay(Schedule):
    """Warmup-stable-decay (Hu et al. 2024, MiniCPM; Hägele et al. 2024).

    Linear warm-up by update number over ``warmup_iters``, ``base_lr`` until ``decay_start``,
    then a linear or cosine decay to ``end_lr`` at ``total_iters``, held after. With
    ``p = min(1, (i - decay_start) / (total_iters - decay_start))``::

        lr(i) = base_lr * (i + 1) / warmup_iters                       # i < warmup_iters
        lr(i) = base_lr                                                # i < decay_start
        lr(i) = base_lr + (end_lr - base_lr) * p                       # after, linear
        lr(i) = end_lr + (base_lr - end_lr) * (1 + cos(pi * p)) / 2    # after, cosine

    >>> WarmupStableDecay(base_lr=0.1, warmup_iters=10, decay_start=80, total_iters=100).lr(90)
    0.05
    """

    family: ClassVar[str] = "warmup_stable_decay"
    base_lr: float
    warmup_iters: int
    decay_start: int
    total_iters: int
    end_lr: float = 0.0
    decay: str = "linear"

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        _check_int("warmup_iters", self.warmup_iters, 0)
        _check_int("decay_start", self.decay_start, self.warmup_iters)
        _check_int("total_iters", self.total_iters, self.decay_start + 1)
        _check_floor("end_lr", self.end_lr, self.base_lr)
        _check_choice("decay", self.decay, ("linear", "cosine"))

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        if iteration < self.warmup_iters:
            return self.base_lr * _ramp(iteration, self.warmup_iters)
        if iteration < self.decay_start:
            return self.base_lr
        progress = min(1.0, (iteration - self.decay_start) / (self.total_iters - self.decay_start))
        anneal = _cosine if self.decay == "cosine" else _linear
        return anneal(self.base_lr, self.end_lr, progress)

    def describe(self) -> str:
        return (f"warmup_stable_decay, base lr {_fmt(self.base_lr)}, {self.warmup_iters} warmup "
                f"iterations, stable until {self.decay_start}, {self.decay} decay to "
                f"{_fmt(self.end_lr)} at {self.total_iters}")


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """Transformer / fairseq inverse square root: with update number ``s = i + 1``,
    ``lr(i) = base_lr * min(s / warmup_iters, sqrt(warmup_iters / s))`` — linear up to
    ``base_lr`` at ``s = warmup_iters``, then proportional to ``1 / sqrt(s)``
    (``warmup_iters = 0``: from the first update, ``base_lr / sqrt(s)``).

    >>> InverseSqrt(base_lr=0.1, warmup_iters=100).lr(399)
    0.05
    """

    family: ClassVar[str] = "inverse_sqrt"
    base_lr: float
    warmup_iters: int

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        _check_int("warmup_iters", self.warmup_iters, 0)

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        update = iteration + 1
        if update < self.warmup_iters:
            return self.base_lr * _ramp(iteration, self.warmup_iters)
        return self.base_lr * math.sqrt(max(self.warmup_iters, 1) / update)

    def describe(self) -> str:
        return (f"inverse_sqrt, base lr {_fmt(self.base_lr)} after {self.warmup_iters} warmup "
                f"iterations, then ∝ 1/sqrt(iteration)")


@dataclass(frozen=True)
class Plateau(Schedule):
    """Reduce on plateau, PyTorch ReduceLROnPlateau semantics, counting validation evaluations.

    The learning rate is a pure function of ``history``: it is replayed from the start (best
    value, bad-evaluation count, cooldown) on every call. A value improves on the best when it
    exceeds ``best * (1 + threshold)`` (rel) or ``best + threshold`` (abs) for mode max (mirrored
    for min). After more than ``patience`` evaluations without improvement the learning rate is
    multiplied by ``factor``, floored at ``min_lr``, and ``cooldown`` evaluations are ignored.
    So ``lr(i) = max(base_lr * factor ** n, min_lr)`` with ``n`` the reductions so far (``i``
    is not used).

    >>> Plateau(base_lr=0.1, factor=0.5, patience=1).lr(0, history=[0.8, 0.7, 0.7])
    0.05
    """

    family: ClassVar[str] = "plateau"
    base_lr: float
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float = 0.0
    mode: str = "max"

    def __post_init__(self) -> None:
        _check_lr("base_lr", self.base_lr)
        _check_number("factor", self.factor, "in (0, 1)", lambda v: 0 < v < 1)
        _check_int("patience", self.patience, 0)
        _check_number("threshold", self.threshold, "non-negative", lambda v: v >= 0)
        _check_choice("threshold_mode", self.threshold_mode, ("rel", "abs"))
        _check_int("cooldown", self.cooldown, 0)
        _check_floor("min_lr", self.min_lr, self.base_lr)
        _check_choice("mode", self.mode, ("max", "min"))

    def _improves(self, value: float, best: float) -> bool:
        if self.mode == "max":
            if self.threshold_mode == "rel":
                return value > best * (1.0 + self.threshold)
            return value > best + self.threshold
        if self.threshold_mode == "rel":
            return value < best * (1.0 - self.threshold)
        return value < best - self.threshold

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        lr = self.base_lr
        best = -math.inf if self.mode == "max" else math.inf
        bad = cooling = 0
        for value in history:
            value = float(value)
            if self._improves(value, best):
                best, bad = value, 0
            else:
                bad += 1
            if cooling > 0:
                cooling -= 1
                bad = 0
            if bad > self.patience:
                reduced = max(lr * self.factor, self.min_lr)
                if lr - reduced > _PLATEAU_EPS:
                    lr = reduced
                cooling, bad = self.cooldown, 0
        return lr

    def describe(self) -> str:
        return (f"plateau, base lr {_fmt(self.base_lr)} ×{_fmt(self.factor)} after "
                f"{self.patience + 1} validations without {self.threshold_mode} improvement "
                f"> {_fmt(self.threshold)}, cooldown {self.cooldown}, min lr {_fmt(self.min_lr)}")


@dataclass(frozen=True)
class LRRange(Schedule):
    """The LR range test's ramp (Smith 2015/2017): ``min_lr`` growing exponentially to
    ``max_lr`` over ``num_iters`` updates, ``max_lr`` held after.

    ``lr(i) = min_lr * (max_lr / min_lr) ** (min(i, num_iters - 1) / (num_iters - 1))``: equal
    steps in log lr, so every decade of learning rates gets the same number of iterations. Not a
    search family: ``lrsearch lr-find`` trains with it once to bound the search.

    >>> LRRange(min_lr=1e-4, max_lr=1.0, num_iters=5).lr(2)
    0.01
    """

    family: ClassVar[str] = "lr_range"
    min_lr: float
    max_lr: float
    num_iters: int

    def __post_init__(self) -> None:
        _check_lr("min_lr", self.min_lr)
        _check_number("max_lr", self.max_lr, f"greater than min_lr={self.min_lr!r}",
                      lambda v: v > self.min_lr)
        _check_int("num_iters", self.num_iters, 2)

    @property
    def base_lr(self) -> float:
        return self.max_lr

    def _lr(self, iteration: int, history: Sequence[float]) -> float:
        progress = min(iteration, self.num_iters - 1) / (self.num_iters - 1)
        return self.min_lr * (self.max_lr / self.min_lr) ** progress

    def describe(self) -> str:
        return (f"lr_range, lr {_fmt(self.min_lr)} → {_fmt(self.max_lr)} exponentially over "
                f"{self.num_iters} iterations")


FAMILIES: dict[str, type[Schedule]] = {
    cls.family: cls
    for cls in (Constant, Step, MultiStep, Exponential, Polynomial, Cosine, CosineRestarts,
                Cyclic, OneCycle, Warmup, WarmupStableDecay, InverseSqrt, Plateau)
}
# Schedules the training application follows that a study never samples.
_PROBES: dict[str, type[Schedule]] = {LRRange.family: LRRange}


def from_dict(spec: Mapping[str, Any]) -> Schedule:
    """Inverse of ``Schedule.to_dict`` (nested for :class:`Warmup`)."""
    if not isinstance(spec, Mapping) or "family" not in spec:
        raise ValueError(f"a schedule must be a mapping with a 'family' key, but got {spec!r}")
    family = spec["family"]
    cls = FAMILIES.get(family) or _PROBES.get(family)
    if cls is None:
        raise ValueError(f"unknown schedule family {family!r}{_did_you_mean(family, FAMILIES)}")
    known = {field.name: field for field in fields(cls)}
    kwargs = {}
    for key, value in spec.items():
        if key == "family":
            continue
        if key not in known:
            raise ValueError(f"unknown key {key!r} for family {family!r}"
                             f"{_did_you_mean(key, known)}")
        kwargs[key] = from_dict(value) if isinstance(value, Mapping) else value
    for name, field in known.items():
        if name not in kwargs and field.default is MISSING:
            raise ValueError(f"family {family!r} needs key {name!r}")
    return cls(**kwargs)


def curve(schedule: Schedule, total_iters: int, points: int = 200) -> list[tuple[int, float]]:
    """``(iteration, lr)`` pairs over iterations 0 … total_iters - 1 for plotting and records.

    At most ``points`` evenly spaced iterations, always the first and the last. No validation
    history: a :class:`Plateau` curve is its starting value.
    """
    _check_int("total_iters", total_iters, 1)
    _check_int("points", points, 2)
    if total_iters <= points:
        iterations: Sequence[int] = range(total_iters)
    else:
        step = (total_iters - 1) / (points - 1)
        iterations = sorted({round(k * step) for k in range(points)})
    return [(i, schedule.lr(i)) for i in iterations]
