"""Baselines: reference schedules a study runs besides what it searches, so it shows its payoff.

A baseline is not sampled: its schedule follows from the NiftyNet config (and, for
``one-cycle``, the study's LR range test), and it trains with the config's own optimiser.

- ``config``: the config as the user wrote it, a constant ``lr`` (``Constant(cfg.lr)``);
- ``poly``: nnU-Net's poly schedule at the config's ``lr``,
  ``Polynomial(cfg.lr, total_iters=max_iter, power=0.9, end_lr=0)``;
- ``one-cycle``: one-cycle peaking at the range test's steepest descent (fastai's recipe:
  ``lr_find``'s suggestion handed to ``fit_one_cycle``), PyTorch's OneCycleLR defaults.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from lrsearch.search import schedules

__all__ = ["BASELINES", "DEFAULT", "NEEDS_RANGE_TEST", "baseline_schedule", "label",
           "parse_baselines"]

# name → what it is, in words (help texts and errors)
BASELINES = {
    "config": "your config: constant lr from the INI, its optimiser",
    "poly": "nnU-Net's poly 0.9 at the INI's lr",
    "one-cycle": "one-cycle peaking at the LR range test's steepest descent",
}
CONFIG = "config"  # the user's own config: the baseline the payoff is measured against
DEFAULT = (CONFIG,)
NONE = "none"
NEEDS_RANGE_TEST = frozenset({"one-cycle"})
POLY_POWER = 0.9  # nnU-Net's


def parse_baselines(names: str | Sequence[str], where: str = "--baselines") -> tuple[str, ...]:
    """``"config,poly"`` (or a list) → ``("config", "poly")``; ``"none"`` or nothing → ``()``.

    Raises ValueError naming the bad name and the valid ones.
    """
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    items = [n for n in items if n != ""]
    if items == [NONE]:
        return ()
    valid = ", ".join([*BASELINES, NONE])
    for name in items:
        if not isinstance(name, str) or name not in BASELINES:
            close = difflib.get_close_matches(str(name), list(BASELINES), n=1)
            hint = (f" ({NONE} stands alone)" if name == NONE else
                    f" (did you mean {close[0]!r}?)" if close else "")
            raise ValueError(f"{where}: unknown baseline {name!r}{hint}; valid: {valid}")
    return tuple(dict.fromkeys(items))  # each once, in the order given


def label(name: str) -> str:
    """How people see a baseline trial: "your config", "baseline poly", ..."""
    return "your config" if name == "config" else f"baseline {name}"


def baseline_schedule(name: str, lr: float, max_iter: int,
                      steepest_lr: float | None = None) -> schedules.Schedule:
    """The baseline's schedule for a trial of ``max_iter`` iterations (``lr``: the config's)."""
    if name == "config":
        schedule: schedules.Schedule = schedules.Constant(lr)
    elif name == "poly":
        schedule = schedules.Polynomial(lr, total_iters=max_iter, power=POLY_POWER, end_lr=0.0)
    elif name == "one-cycle":
        if steepest_lr is None:
            raise ValueError("the one-cycle baseline needs the study's LR range test "
                             "(--lr-bounds auto)")
        schedule = schedules.OneCycle(steepest_lr, total_steps=max_iter)
    else:
        raise ValueError(f"unknown baseline {name!r}; valid: {', '.join(BASELINES)}")
    return schedule
