"""What a trial's score means: one scalar that the study maximises.

Three objectives, chosen per study (``[study] objective`` in the space TOML, ``--objective``):

``final_dice``
    Mean foreground Dice of the validation subjects' whole volumes after training (NiftyNet's
    own inference with the final model). The accuracy you will deploy.
``dice_auc``
    Area under the validation Dice curve over the trial's iterations, normalised to [0, 1]:
    the trapezoid rule over the points ``(0, 0)``, then every validation round
    ``(iteration, window Dice)``, the last value held until ``max_iter``, divided by
    ``max_iter``. A schedule that reaches a given Dice sooner scores higher; one that stays at
    Dice 1 from the start would score 1.
``iters_to:<dice>``
    Iterations until the validation Dice first reaches ``<dice>`` (at validation resolution:
    the first round whose mean window Dice is at least the target). To keep one scalar that
    is maximised like the others, a trial that reaches the target at iteration ``k`` scores
    ``2 - k / max_iter`` (in [1, 2), fewer iterations is higher), and a trial that never does
    scores its best validation Dice (below the target, so below 1). Every trial that reaches
    the target therefore ranks above every trial that does not, and those that do not rank by
    how close they came.

Every objective is maximised, so the study's direction is always "maximize" and the pruner
keeps comparing the validation Dice that trials report while they train. Standard
library only.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["DIRECTION", "OBJECTIVES", "Objective", "parse_objective"]

OBJECTIVES = ("final_dice", "dice_auc", "iters_to:<dice>")
DIRECTION = "maximize"
_ITERS_TO = "iters_to:"


@dataclass(frozen=True)
class Objective:
    """A parsed objective; ``target`` is set for ``iters_to``."""

    kind: str  # "final_dice", "dice_auc" or "iters_to"
    target: float | None = None

    @property
    def name(self) -> str:
        """The canonical spelling stored on the study (``iters_to:0.85``)."""
        return f"{_ITERS_TO}{self.target:g}" if self.kind == "iters_to" else self.kind

    def score(self, final_dice: float | None, rounds: Sequence[tuple[int, float]],
              max_iter: int) -> float:
        """The trial's value from its whole-volume Dice and its validation rounds.

        ``rounds``: ``(iteration, validation Dice)`` pairs (any order).
        """
        if self.kind == "final_dice":
            if final_dice is None:
                raise ValueError("final_dice needs the whole-volume Dice, but got None")
            return float(final_dice)
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, but got {max_iter!r}")
        ordered = sorted((int(i), float(d)) for i, d in rounds if 0 < i <= max_iter)
        if self.kind == "dice_auc":
            return dice_auc(ordered, max_iter)
        reached = next((i for i, d in ordered if d >= self.target), None)
        if reached is not None:
            return 2.0 - reached / max_iter
        return max((d for _, d in ordered if not math.isnan(d)), default=0.0)

    def iterations_to_target(self, rounds: Sequence[tuple[int, float]]) -> int | None:
        """For ``iters_to``: the first validation iteration at or above the target."""
        if self.kind != "iters_to":
            return None
        return next((i for i, d in sorted(rounds) if d >= self.target), None)


def dice_auc(rounds: Sequence[tuple[int, float]], max_iter: int) -> float:
    """Trapezoid area under (0, 0), the rounds, the last value held to ``max_iter``; / max_iter."""
    points = [(0, 0.0)] + [(i, d) for i, d in rounds if not math.isnan(d)]
    if points[-1][0] < max_iter:
        points.append((max_iter, points[-1][1]))
    area = sum((x1 - x0) * (y0 + y1) / 2.0 for (x0, y0), (x1, y1) in pairwise(points))
    return area / max_iter


def parse_objective(text: str) -> Objective:
    """``"final_dice"``, ``"dice_auc"`` or ``"iters_to:<dice>"`` with 0 < dice <= 1.

    Raises ValueError stating the rule and the value received.
    """
    if not isinstance(text, str):
        raise ValueError(f"objective must be a string, but got {text!r}")
    if text in ("final_dice", "dice_auc"):
        return Objective(text)
    if text.startswith(_ITERS_TO):
        raw = text[len(_ITERS_TO):]
        try:
            target = float(raw)
        except ValueError:
            target = math.nan
        if not 0 < target <= 1:
            raise ValueError(f"iters_to needs a Dice in (0, 1] after the colon, like "
                             f"iters_to:0.85, but got {text!r}")
        return Objective("iters_to", target)
    close = difflib.get_close_matches(text, ["final_dice", "dice_auc", "iters_to:0.9"], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, "
                     f"but got {text!r}{hint}")
